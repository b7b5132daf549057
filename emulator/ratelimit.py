"""Per-key sliding-window rate limit over 60 emulator seconds."""

from __future__ import annotations

import math
from collections import defaultdict, deque

from emulator.clock import Clock

WINDOW = 60.0


class SlidingWindow:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)

    def admit(self, key: str, limit: int) -> float | None:
        """Record a hit and return None, or return the emulator seconds until one is allowed.

        A rejected request is not recorded, so a client that backs off as told gets through.
        """
        now = self._clock.seconds()
        hits = self._hits[key]
        while hits and hits[0] <= now - WINDOW:
            hits.popleft()
        if len(hits) >= limit:
            return max(hits[0] + WINDOW - now, 0.0) if hits else WINDOW
        hits.append(now)
        return None

    def clear(self) -> None:
        self._hits.clear()


def format_retry_after(real_seconds: float) -> str:
    """`Retry-After` as HTTP defines it: whole seconds (`delay-seconds = 1*DIGIT`), rounded up
    so a client that waits as told is admitted, whatever the emulator's speed."""
    return str(max(1, math.ceil(real_seconds)))
