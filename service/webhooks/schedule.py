"""When a failed delivery is tried again: the published schedule.

Attempt 1 is immediate; after a failure the next waits, in turn (±10 % jitter so a receiver
coming back is not hit by every retry at once):

    5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 20 h

ten attempts over 2 days 23 h 35 min. A 429 or 503 with Retry-After waits at least that long.
`WEBHOOK_TIME_SCALE` divides every delay (tests run three days in seconds).
"""

from __future__ import annotations

import random

RETRY_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 72000)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
_JITTER = 0.1
# A Retry-After is honoured up to this long; beyond, the schedule decides.
_MAX_RETRY_AFTER = 86_400.0


def next_delay(
    attempts_made: int, *, retry_after: float | None, scale: float, rng: random.Random
) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts, or None when exhausted."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[attempts_made - 1] * rng.uniform(1 - _JITTER, 1 + _JITTER)
    if retry_after is not None:
        base = max(base, min(retry_after * scale, _MAX_RETRY_AFTER))
    return base / scale
