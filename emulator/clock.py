"""The emulator's controllable clock.

now = wall time at start + real elapsed * speed + offset. Every lifetime (products, images,
result URLs, the rate-limit window, generation timers) reads this clock, so a test can jump a
week ahead with `advance` instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, speed: float = 1.0) -> None:
        self._origin = datetime.now(UTC)
        self._mono_origin = time.monotonic()
        self._speed = speed
        self._offset = 0.0
        # Sleepers wait on this so an advance wakes them to re-check their deadline.
        self._advanced = asyncio.Event()

    @property
    def speed(self) -> float:
        return self._speed

    def seconds(self) -> float:
        """Emulator seconds since the origin: monotonic, unaffected by wall-clock steps."""
        return (time.monotonic() - self._mono_origin) * self._speed + self._offset

    def now(self) -> datetime:
        return self.at(self.seconds())

    def at(self, seconds: float) -> datetime:
        return self._origin + timedelta(seconds=seconds)

    def to_real(self, emulator_seconds: float) -> float:
        return emulator_seconds / self._speed

    def advance(self, seconds: float) -> None:
        self._offset += seconds
        self._wake()

    def reset(self, speed: float) -> None:
        self._origin = datetime.now(UTC)
        self._mono_origin = time.monotonic()
        self._speed = speed
        self._offset = 0.0
        self._wake()

    def _wake(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until emulator time `deadline`, waking early if the clock is advanced."""
        while (remaining := deadline - self.seconds()) > 0:
            event = self._advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=self.to_real(remaining))


def iso(moment: datetime) -> str:
    """ISO-8601 with milliseconds and a Z, as Genlook's examples show."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
