"""Startup configuration, and the knobs a reset may override until the next reset."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.demo_key import DEMO_API_KEY
from emulator.links import DEFAULT_URL_LIFETIME

DEFAULT_DURATION_MEDIAN = 10.0
DEFAULT_DURATION_SIGMA = 0.35


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    api_key: str = DEMO_API_KEY
    credits: int = 1000
    rate_limit: int = 100
    speed: float = 1.0
    # Emulator seconds; the engine divides by the clock speed.
    duration_median: float = DEFAULT_DURATION_MEDIAN
    duration_sigma: float = DEFAULT_DURATION_SIGMA
    has_logo: bool = False
    # Emulator seconds a signed file URL (resultImageUrl, imageUrl) loads for.
    result_url_lifetime: float = DEFAULT_URL_LIFETIME

    def with_overrides(
        self,
        *,
        credits: int | None = None,
        rate_limit: int | None = None,
        speed: float | None = None,
        duration_median: float | None = None,
        duration_sigma: float | None = None,
        has_logo: bool | None = None,
        result_url_lifetime: float | None = None,
    ) -> EmulatorConfig:
        return EmulatorConfig(
            api_key=self.api_key,
            credits=self.credits if credits is None else credits,
            rate_limit=self.rate_limit if rate_limit is None else rate_limit,
            speed=self.speed if speed is None else speed,
            duration_median=self.duration_median if duration_median is None else duration_median,
            duration_sigma=self.duration_sigma if duration_sigma is None else duration_sigma,
            has_logo=self.has_logo if has_logo is None else has_logo,
            result_url_lifetime=(
                self.result_url_lifetime if result_url_lifetime is None else result_url_lifetime
            ),
        )
