"""What an ops action refuses, as domain errors with a stable `code`; the HTTP layer
(service/api/ops.py) gives each its status."""

from __future__ import annotations

from typing import ClassVar

from service.tryons.models import TryOnRecord


class OpsError(Exception):
    code: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IntakePaused(OpsError):
    """New try-ons are refused while the operators paused intake."""

    code = "INTAKE_PAUSED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        # Whole seconds until a new try-on may be accepted (the pause's end, or a default).
        self.retry_after = retry_after


class RetryRefused(OpsError):
    """An operator's retry of a try-on is refused; `record` is the try-on as it stands."""

    def __init__(self, message: str, record: TryOnRecord) -> None:
        super().__init__(message)
        self.record = record


class NotRetryable(RetryRefused):
    """The try-on is not failed."""

    code = "TRYON_NOT_RETRYABLE"


class RetryWouldSpendCredit(RetryRefused):
    """A create may have reached Genlook: a retry could spend a second credit."""

    code = "RETRY_WOULD_SPEND_CREDIT"
