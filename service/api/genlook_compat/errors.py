"""Refusals on `/tryon/v1` in Genlook's codes. The envelope is the gateway's own (the same
`{code, message, status, details?}`); what differs is the code of a few gateway-only
conditions, mapped to the nearest Genlook one (docs/genlook-compat.md):

- a full daily cap or quota (402) -> INSUFFICIENT_CREDITS: a Genlook client handles it so;
- a photo over the size or pixel limit (413, 422) -> 400 INVALID_IMAGE, as Genlook refuses one.

Everything else keeps the gateway's status and code, Genlook's where one exists: throttling is
already 429 RATE_LIMITED with a whole-second Retry-After, a paused intake 503 INTAKE_PAUSED with
Retry-After, and the 404s and 409 RESERVED_EXTERNAL_ID are Genlook's codes. Requests refused
by Genlook's own validation (genlook_wire) answer exactly what Genlook answers.
"""

from __future__ import annotations

from typing import Any

from genlook_wire.errors import ApiError as WireError
from litestar import Request, Response
from litestar.types import ExceptionHandlersMap

from service.domain_errors import (
    DomainError,
    FieldError,
    QuotaExhausted,
    Unprocessable,
)
from service.errors import EXCEPTION_HANDLERS, ApiError, ErrorBody


def _answer(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    response: Response[ErrorBody] = EXCEPTION_HANDLERS[ApiError](request, exc)
    return response


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    if isinstance(exc, QuotaExhausted):
        exc.code = "INSUFFICIENT_CREDITS"
    elif isinstance(exc, Unprocessable):
        return _answer(request, ApiError(400, "INVALID_IMAGE", exc.message))
    response: Response[ErrorBody] = EXCEPTION_HANDLERS[DomainError](request, exc)
    return response


def _api(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    if exc.status == 413:
        exc = ApiError(400, "INVALID_IMAGE", exc.message, headers=exc.headers)
    return _answer(request, exc)


def _wire(request: Request[Any, Any, Any], exc: WireError) -> Response[ErrorBody]:
    details = None
    if exc.details is not None:
        details = [FieldError(path=d.path, message=d.message) for d in exc.details]
    return _answer(
        request, ApiError(exc.status, exc.code, exc.message, details=details, headers=exc.headers)
    )


GENLOOK_ERRORS: ExceptionHandlersMap = {
    WireError: _wire,
    ApiError: _api,
    DomainError: _domain,
}
