"""The gateway's one error envelope: `{code, message, status, details?}` on every 4xx and 5xx.

Every refusal reaches the client through this module. The domain raises a `DomainError` of one
kind (service/domain_errors.py) and `DOMAIN_STATUS` below is the one place that says which HTTP
status each kind answers with. The API layer itself raises `ApiError` only for what is about
HTTP (a body over the size limit that must close the connection, a wrong media type, a body
that does not parse). Framework errors (validation, unknown route, wrong method) are mapped to
the same envelope, and anything unexpected becomes a 500 `INTERNAL_ERROR` whose message reveals
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from service.domain_errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    QuotaExhausted,
    RateLimited,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from service.redis_conn import STORE_ERRORS

log = logging.getLogger("service.errors")


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    code: str
    message: str
    status: int
    details: list[FieldError] | None = None


class ApiError(Exception):
    """A refusal decided by the HTTP layer itself, with its status and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        return ErrorBody(
            code=self.code, message=self.message, status=self.status, details=self.details
        )


# Each kind of domain refusal and the status it answers with (its subclasses answer the same).
DOMAIN_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    QuotaExhausted: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    RateLimited: 429,
    Unavailable: 503,
}


def http_status(exc: DomainError) -> int | None:
    """The status a domain error answers with; None for a kind the table does not know."""
    for kind in type(exc).__mro__:
        status = DOMAIN_STATUS.get(kind)
        if status is not None:
            return status
    return None


def _respond(error: ApiError) -> Response[ErrorBody]:
    return Response(error.body(), status_code=error.status, headers=error.headers)


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return _respond(exc)


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    status = http_status(exc)
    if status is None:  # a bare DomainError or an unmapped kind: a bug, not the client's fault
        return _internal(request, exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return _respond(ApiError(status, exc.code, exc.message, details=exc.details, headers=headers))


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    details = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            details.append(FieldError(path=key, message=str(item.get("message", "invalid"))))
    message = exc.detail or "Request failed validation."
    return _respond(ApiError(400, "VALIDATION_FAILED", message, details=details or None))


_HTTP_CODES = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if status >= 500:
        return _internal(_, exc)
    code = _HTTP_CODES.get(status, "BAD_REQUEST")
    if isinstance(exc, NotFoundException):
        code = "NOT_FOUND"
    elif isinstance(exc, MethodNotAllowedException):
        code = "METHOD_NOT_ALLOWED"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return _respond(ApiError(status, code, exc.detail, headers=headers))


def _store_down(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    # Redis unreachable (restart, failover): nothing was accepted, and the caller may retry.
    log.warning("redis unavailable: %s", type(exc).__name__)
    return _respond(
        ApiError(
            503,
            "STORE_UNAVAILABLE",
            "The gateway cannot reach its store; retry shortly (with the same Idempotency-Key).",
            headers={"Retry-After": "1"},
        )
    )


def _internal(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return _respond(ApiError(HTTP_500_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal error."))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    DomainError: _domain_error,
    ValidationException: _validation,
    HTTPException: _http,
    **dict.fromkeys(STORE_ERRORS, _store_down),  # a Redis outage: a 503, never a 500
    Exception: _internal,
}
