"""Injected faults and 429 storms, configured through the control API."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass
from typing import Literal

Mode = Literal["error", "timeout", "drop", "drop_after", "latency"]

ENDPOINTS = frozenset(
    {
        "upload_image",
        "create_try_on",
        "create_try_on_sync",
        "get_generation",
        "upsert_product",
        "list_products",
        "get_product",
        "delete_product",
        "get_credits",
        "delete_customer",
        # Reads of signed file URLs (results, upload previews): storage, not the API.
        "files",
    }
)


@dataclass(slots=True)
class Fault:
    id: str
    endpoint: str
    mode: Mode
    status: int
    code: str
    rate: float
    remaining: int | None
    latency: float

    def matches(self, endpoint: str) -> bool:
        return self.endpoint in ("*", endpoint) and self.remaining != 0


def default_code(status: int) -> str:
    return {429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE", 502: "BAD_GATEWAY"}.get(
        status, "INTERNAL_ERROR"
    )


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._storm_until = 0.0
        self._storm_retry_after = 1.0
        # Requests hanging in `timeout` mode wait on this; reset and shutdown release them.
        self.release = asyncio.Event()

    def add(
        self,
        *,
        endpoint: str,
        mode: Mode,
        status: int,
        code: str | None,
        rate: float,
        count: int | None,
        latency: float,
    ) -> Fault:
        fault = Fault(
            id=f"fault_{next(self._ids)}",
            endpoint=endpoint,
            mode=mode,
            status=status,
            code=code or default_code(status),
            rate=rate,
            remaining=count,
            latency=latency,
        )
        self._faults.append(fault)
        return fault

    def take(self, endpoint: str) -> Fault | None:
        """The first matching fault that fires for this request; a firing uses up one `count`."""
        for fault in self._faults:
            if fault.matches(endpoint) and random.random() < fault.rate:
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()
        self._storm_until = 0.0
        self.release.set()
        self.release = asyncio.Event()

    def start_storm(self, seconds: float, retry_after: float) -> None:
        self._storm_until = time.monotonic() + seconds
        self._storm_retry_after = retry_after

    def storm_retry_after(self) -> float | None:
        return self._storm_retry_after if time.monotonic() < self._storm_until else None
