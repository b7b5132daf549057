"""What the domain raises when it refuses a request: one tree, each error with a stable `code`.

```
DomainError            code, message, details (per-field), retry_after (seconds)
├── InvalidInput       the request is malformed or breaks a rule
├── Unauthenticated    no credential, or one that is not valid
├── Forbidden          a valid credential that may not do this
├── NotFound           no such thing (or one the caller may not see)
├── Conflict           the request contradicts the state it would change
├── Unprocessable      well-formed, but cannot be processed (a photo too large to decode)
├── LimitReached       a counted limit is full (caught as one; raised as one of its kinds)
│   ├── QuotaExhausted     a count of try-ons (credits): until it resets, or for good
│   └── RateLimited        too many requests in a window
└── Unavailable        refused for now: retry later (`retry_after` says when)
```

The domain says which kind of refusal it is, never an HTTP status: `service/errors.py` maps each
kind to its status and the one envelope, in one table. So this module imports nothing of the
project or of the web framework, and any layer below the API (access, try-ons, ops, imaging)
can raise these.
"""

from __future__ import annotations

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One bad field: `path` in Genlook's dotted form (`products.0.externalId`)."""

    path: str
    message: str


class DomainError(Exception):
    """Raise one of the kinds below, not this base: the kind decides the answer's status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: list[FieldError] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        # Whole seconds until a retry may succeed; None: no advice.
        self.retry_after = retry_after


class InvalidInput(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class Forbidden(DomainError):
    pass


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Unprocessable(DomainError):
    pass


class LimitReached(DomainError):
    pass


class QuotaExhausted(LimitReached):
    pass


class RateLimited(LimitReached):
    pass


class Unavailable(DomainError):
    pass


VALIDATION_MESSAGE = "Request failed validation. See `details` for per-field errors."


def validation_failed(path: str, message: str) -> InvalidInput:
    """The one shape of a per-field refusal: VALIDATION_FAILED with the field in `details`."""
    return InvalidInput(
        "VALIDATION_FAILED", VALIDATION_MESSAGE, details=[FieldError(path=path, message=message)]
    )
