"""`create_app(config) -> Litestar`: the Genlook surface under /tryon/v1 plus the control API."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException

from emulator.config import EmulatorConfig
from emulator.control import control_router
from emulator.deps import provide_account, provide_runtime
from emulator.errors import ApiError, FieldIssue, validation_failed
from emulator.guard import Guard
from emulator.routes.account import delete_customer, get_credits
from emulator.routes.images import upload_image
from emulator.routes.products import delete_product, get_product, list_products, upsert_product
from emulator.routes.tryon import create_try_on, create_try_on_sync, get_generation
from emulator.runtime import Runtime

log = logging.getLogger(__name__)

BASE_PATH = "/tryon/v1"

_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "INVALID_IMAGE"}


def _error_response(error: ApiError) -> Response[bytes]:
    return Response(
        error.encode(),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    return _error_response(exc)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        issues = [
            FieldIssue(path=str(item.get("key", "")), message=str(item.get("message", exc.detail)))
            for item in extra
            if isinstance(item, dict)
        ]
        return _error_response(
            validation_failed(issues or [FieldIssue(path="", message=exc.detail)])
        )
    status = exc.status_code
    code = _CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    return _error_response(ApiError(status, code, exc.detail))


def _internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", exc_info=exc)
    return _error_response(ApiError(500, "INTERNAL_ERROR", "Internal server error."))


def create_app(config: EmulatorConfig) -> Litestar:
    runtime = Runtime(config)
    genlook = Router(
        path=BASE_PATH,
        route_handlers=[
            upload_image,
            create_try_on,
            create_try_on_sync,
            get_generation,
            upsert_product,
            list_products,
            get_product,
            delete_product,
            get_credits,
            delete_customer,
        ],
        dependencies={"account": Provide(provide_account)},
    )
    app = Litestar(
        route_handlers=[genlook, control_router],
        dependencies={"runtime": Provide(provide_runtime)},
        middleware=[Guard(runtime)],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        # Bodies are read with our own caps (see emulator.body), which answer like Genlook does.
        request_max_body_size=None,
        on_shutdown=[runtime.aclose],
        openapi_config=None,
        # Litestar's default config would log every outbound fetch at INFO; uvicorn's warning
        # level is the emulator's.
        logging_config=None,
    )
    app.state.runtime = runtime
    return app
