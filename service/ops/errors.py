"""What an ops action refuses: kinds of the one domain error tree (service/domain_errors.py),
each with a stable `code`; service/errors.py gives every kind its status."""

from __future__ import annotations

from service.domain_errors import Conflict, Unavailable
from service.tryons.models import TryOnRecord


class IntakePaused(Unavailable):
    """New try-ons are refused while the operators paused intake; `retry_after` is the pause's
    end, or a default."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__("INTAKE_PAUSED", message, retry_after=retry_after)


class RetryRefused(Conflict):
    """An operator's retry of a try-on is refused; `record` is the try-on as it stands."""

    code_of_kind = "RETRY_REFUSED"

    def __init__(self, message: str, record: TryOnRecord) -> None:
        super().__init__(self.code_of_kind, message)
        self.record = record


class NotRetryable(RetryRefused):
    """The try-on is not failed."""

    code_of_kind = "TRYON_NOT_RETRYABLE"


class RetryWouldSpendCredit(RetryRefused):
    """A create may have reached Genlook: a retry could spend a second credit."""

    code_of_kind = "RETRY_WOULD_SPEND_CREDIT"
