"""The gateway's one error envelope: `{code, message, status, details?}` on every 4xx and 5xx.

Handlers raise `ApiError` (or a subclass) with a stable `code`; framework errors (validation,
unknown route, wrong method, body too large) are mapped to the same envelope here, and anything
unexpected becomes a 500 `INTERNAL_ERROR` whose message reveals nothing.
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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.byte_budget import BudgetBusy, OverBudget

log = logging.getLogger("service.errors")


class FieldError(msgspec.Struct, frozen=True):
    path: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    code: str
    message: str
    status: int
    details: list[FieldError] | None = None


class ApiError(Exception):
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


def validation_failed(path: str, message: str) -> ApiError:
    return ApiError(
        400,
        "VALIDATION_FAILED",
        "Request failed validation. See `details` for per-field errors.",
        details=[FieldError(path=path, message=message)],
    )


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)


def _respond(error: ApiError) -> Response[ErrorBody]:
    return Response(error.body(), status_code=error.status, headers=error.headers)


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return _respond(exc)


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


def _over_budget(_: Request[Any, Any, Any], exc: OverBudget) -> Response[ErrorBody]:
    # Only photo decoding holds a byte budget. 422 like the pixel limit: the request was
    # within its byte limit; the photo it carries cannot be decoded in this gateway's memory.
    mib = 1024 * 1024
    return _respond(
        ApiError(
            422,
            "IMAGE_TOO_LARGE",
            f"Decoding this photo takes {exc.needed // mib} MiB; this gateway decodes at most "
            f"{exc.capacity // mib} MiB at once. Send fewer pixels.",
        )
    )


def _budget_busy(_: Request[Any, Any, Any], exc: BudgetBusy) -> Response[ErrorBody]:
    # 503, not 429: nothing this caller did is over a limit; the gateway is busy decoding.
    return _respond(
        ApiError(
            503,
            "IMAGE_PROCESSING_BUSY",
            "The gateway is decoding other photos; retry shortly.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    )


def _internal(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return _respond(ApiError(HTTP_500_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal error."))


# What a Redis outage raises (restart, failover, network): a 503, never a 500.
STORE_ERRORS = (RedisConnectionError, RedisTimeoutError)

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    **dict.fromkeys(STORE_ERRORS, _store_down),
    OverBudget: _over_budget,
    BudgetBusy: _budget_busy,
    Exception: _internal,
}
