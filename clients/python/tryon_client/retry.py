"""When a failed call is sent again, and after how long: one policy for both clients.

A call is retried only when sending it again cannot do anything twice:
- the gateway refused it without acting (429 `RATE_LIMITED`, 503): always;
- no answer came, or a 500/502/504: only for calls that are safe to repeat (reads, PUT and
  DELETE, uploads the gateway deduplicates by content, and try-on creates, which carry one
  `Idempotency-Key` across all their attempts so the gateway answers a repeat with the first
  try-on);
- a connection that was never opened: always (nothing was sent).

The wait is the answer's `Retry-After` when it has one (a wait longer than `max_retry_after` is
not waited for: the error is raised at once, so a caller never hangs for minutes unknowingly),
otherwise exponential backoff with full jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tryon_client.errors import ApiError, ServerError, TransportError, TryonError

_REFUSED_UNTOUCHED = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(
        self, retries_done: int, error: TryonError, *, repeatable: bool, sent: bool = True
    ) -> float | None:
        """Seconds to wait before sending again, or None to raise `error`."""
        if retries_done >= self.max_retries:
            return None
        if isinstance(error, TransportError):
            if not (repeatable or not sent):
                return None
            return self._backoff(retries_done)
        if not isinstance(error, ApiError):
            return None
        if error.status not in _REFUSED_UNTOUCHED and not (
            repeatable and isinstance(error, ServerError)
        ):
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return self._backoff(retries_done)

    def _backoff(self, retries_done: int) -> float:
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**retries_done))
