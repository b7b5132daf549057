"""Genlook's error envelope `{code, message, status, details?}` and the exception carrying it."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec


class FieldIssue(msgspec.Struct, frozen=True):
    path: str
    message: str


class ErrorBody(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    status: int
    details: list[FieldIssue] | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[FieldIssue] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> ErrorBody:
        return ErrorBody(
            code=self.code, message=self.message, status=self.status, details=self.details
        )

    def encode(self) -> bytes:
        return msgspec.json.encode(self.body())


VALIDATION_MESSAGE = "Request body failed validation. See `details` for per-field errors."


def validation_failed(issues: list[FieldIssue]) -> ApiError:
    return ApiError(400, "VALIDATION_FAILED", VALIDATION_MESSAGE, details=issues)
