"""The Genlook error envelope (genlook_wire/errors.py) and the emulator's own refusals."""

from __future__ import annotations

from genlook_wire.errors import (
    VALIDATION_MESSAGE,
    ApiError,
    ErrorBody,
    FieldIssue,
    validation_failed,
)

__all__ = [
    "VALIDATION_MESSAGE",
    "ApiError",
    "ErrorBody",
    "FieldIssue",
    "forbidden",
    "product_not_found",
    "validation_failed",
]


def product_not_found(external_id: str) -> ApiError:
    return ApiError(404, "PRODUCT_NOT_FOUND", f"Product '{external_id}' not found.")


def forbidden(kind: str) -> ApiError:
    return ApiError(403, "FORBIDDEN", f"This {kind} belongs to another account.")
