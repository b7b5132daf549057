"""Every failure the client raises: one tree, so `except TryonError` catches them all.

```
TryonError
├── TransportError          no answer: the gateway could not be reached, or the connection broke
│   └── RequestTimeout      no answer within the call's timeout
├── ApiError                the gateway answered with its error envelope: code, status, details
│   ├── BadRequest              400 (VALIDATION_FAILED with per-field `details`, ...)
│   ├── AuthenticationError     401 (MISSING_API_KEY, INVALID_API_KEY, ...)
│   ├── QuotaExhausted          402 (INSUFFICIENT_CREDITS, QUOTA_EXCEEDED, ...)
│   ├── PermissionDenied        403
│   ├── NotFound                404 (TRYON_NOT_FOUND, PRODUCT_NOT_FOUND, IMAGE_NOT_FOUND, ...)
│   ├── Conflict                409 (TRYON_NOT_CANCELABLE, IDEMPOTENCY_KEY_REUSED, ...)
│   ├── PayloadTooLarge         413
│   ├── Unprocessable           415, 422
│   ├── RateLimited             429 (`retry_after` says when)
│   └── ServerError             5xx
│       └── ServiceUnavailable  503 (INTAKE_PAUSED, ...; `retry_after` says when)
├── WaitTimeout             wait() gave up before the try-on ended (`tryon`: as last seen)
├── StreamError             the event stream broke more often than the retry policy allows
└── InvalidWebhook          verify_webhook() refused a delivery (`reason` says why)
```

Branch on the class for the kind of failure and on `code` (the gateway's stable error code)
for the exact one; `message` is for humans.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from tryon_client.models import ErrorBody, FieldError

if TYPE_CHECKING:
    from tryon_client.models import TryOn


class TryonError(Exception):
    """The base of every error this client raises."""


class TransportError(TryonError):
    """No answer from the gateway (connection refused, reset, DNS, TLS...)."""


class RequestTimeout(TransportError):
    """No answer within the call's timeout."""


class ApiError(TryonError):
    """An answer in the gateway's error envelope `{code, message, status, details?}`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        details: list[FieldError] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        # Seconds the gateway asked to wait before retrying (Retry-After), or None.
        self.retry_after = retry_after


class BadRequest(ApiError):
    pass


class AuthenticationError(ApiError):
    pass


class QuotaExhausted(ApiError):
    pass


class PermissionDenied(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class Unprocessable(ApiError):
    pass


class RateLimited(ApiError):
    pass


class ServerError(ApiError):
    pass


class ServiceUnavailable(ServerError):
    pass


class WaitTimeout(TryonError):
    """`wait()` reached its timeout; the try-on goes on server-side."""

    def __init__(self, tryon: TryOn) -> None:
        super().__init__(f"try-on {tryon.id} is still {tryon.status}")
        self.tryon = tryon


class StreamError(TryonError):
    """The event stream of a try-on could not be (re)opened or ended before the try-on did."""


class InvalidWebhook(TryonError):
    """A delivery that must not be trusted: bad or missing signature headers, a signature made
    with another secret, a timestamp outside the tolerance, or a body that is not an event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    402: QuotaExhausted,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: Unprocessable,
    422: Unprocessable,
    429: RateLimited,
    503: ServiceUnavailable,
}

_envelope = msgspec.json.Decoder(ErrorBody)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
    """The typed error for an answer that is not a success."""
    try:
        envelope = _envelope.decode(body)
        code, message, details = envelope.code, envelope.message, envelope.details
    except msgspec.DecodeError:
        # Not the gateway's envelope (a proxy's error page, say): still a typed error.
        code, message, details = f"HTTP_{status}", body[:200].decode(errors="replace"), None
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(
        code,
        message,
        status=status,
        details=details,
        retry_after=parse_retry_after(headers.get("retry-after")),
    )
