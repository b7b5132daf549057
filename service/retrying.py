"""When to try again: a server's `Retry-After`, and the backoff when it gave none.

One parser serves every HTTP answer the gateway reads a `Retry-After` from (Genlook's 429s, a
webhook receiver's 429/503), so a garbled header means the same thing everywhere: nothing.
"""

from __future__ import annotations

import email.utils
import math
import time


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds (a number, decimals tolerated, or an HTTP date; never
    negative), or None when absent or unreadable: a header that does not parse is ignored,
    never an error, since it comes from a server we do not control."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before try `attempt + 1` after a transient failure: doubling from `base`,
    at most `cap`."""
    # The exponent is bounded so a very high attempt count cannot overflow the float.
    return float(min(cap, base * 2 ** min(attempt, 64)))
