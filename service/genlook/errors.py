"""Every error the Genlook client raises, as one tree (httpx's ``_exceptions.py`` is the model).

```
GenlookError
├── TransportError                 no HTTP answer                                  .endpoint
│   ├── RequestNotSent             connect error/timeout, pool timeout: safe to retry anything
│   └── OutcomeUnknown             read/write timeout or error, connection dropped after the
│                                  request may have been sent: the server may have acted
├── APIError                       an HTTP answer outside 2xx      .status .code .message .details
│   ├── AuthenticationError        401 MISSING_API_KEY, INVALID_API_KEY
│   ├── PermissionDenied           403 FORBIDDEN
│   ├── BadRequest                 400
│   │   ├── ValidationFailed       VALIDATION_FAILED (.details: list[FieldError])
│   │   ├── ExternalIdRequired     EXTERNAL_ID_REQUIRED
│   │   ├── ProductImagesRequired  PRODUCT_IMAGES_REQUIRED
│   │   ├── CustomerImageRequired  CUSTOMER_IMAGE_REQUIRED
│   │   ├── FileRequired           FILE_REQUIRED
│   │   ├── MultipartFileNotFound  MULTIPART_FILE_NOT_FOUND
│   │   ├── InvalidImageInput      INVALID_IMAGE_INPUT
│   │   ├── InvalidImage           INVALID_IMAGE
│   │   └── CustomerImageFetchFailed CUSTOMER_IMAGE_FETCH_FAILED
│   ├── NotFound                   404
│   │   ├── ProductNotFound        PRODUCT_NOT_FOUND
│   │   ├── GenerationNotFound     GENERATION_NOT_FOUND
│   │   └── ImageNotFound          IMAGE_NOT_FOUND, CUSTOMER_IMAGE_NOT_FOUND
│   ├── Conflict                   409
│   │   └── ReservedExternalId     RESERVED_EXTERNAL_ID
│   ├── InsufficientCredits        402 INSUFFICIENT_CREDITS (legacy QUOTA_EXCEEDED)
│   ├── RateLimited                429 RATE_LIMITED (.retry_after: float | None)
│   └── ServerError                5xx
├── InvalidResponse                a 2xx whose body does not decode to the documented shape
├── GenerationFailed               wait_for_generation: the generation ended FAILED
└── GenerationTimeout              wait_for_generation: no terminal status within the timeout
```

Mapping from a response: by ``code`` first, then by HTTP status class for unknown codes
(`api_error_from_response`). Messages never contain the API key: the client scrubs it from
server-provided text before building an error, and nothing here ever sees request headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

# Re-exported: part of this package's public surface since before the parser was shared.
from service.retrying import parse_retry_after

if TYPE_CHECKING:
    from service.genlook.models import Generation


class FieldError(msgspec.Struct, frozen=True):
    """One entry of a VALIDATION_FAILED ``details`` array."""

    path: str
    message: str


class GenlookError(Exception):
    """Base class of everything the Genlook client raises."""


# --- no HTTP answer --------------------------------------------------------------------------


class TransportError(GenlookError):
    """No HTTP answer was received."""

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.message = message

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, message={self.message!r})"


class RequestNotSent(TransportError):
    """The request provably never reached the server (connect failure, pool timeout)."""


class OutcomeUnknown(TransportError):
    """The request may have reached the server and been acted on; no answer came back."""


# --- an HTTP answer outside 2xx --------------------------------------------------------------


class APIError(GenlookError):
    """Genlook answered with an error envelope ``{code, message, status, details?}``."""

    details: Any

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str,
        details: Any = None,
        endpoint: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.endpoint = endpoint

    def __str__(self) -> str:
        code = self.code or "-"
        return f"{self.endpoint}: HTTP {self.status} {code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, endpoint={self.endpoint!r})"
        )


class AuthenticationError(APIError):
    """401: the key is missing, wrong, revoked or the account is inactive."""


class PermissionDenied(APIError):
    """403 FORBIDDEN: the product or generation belongs to another account."""


class BadRequest(APIError):
    """400: the request was rejected; nothing changed upstream."""


class ValidationFailed(BadRequest):
    """400 VALIDATION_FAILED, with one `FieldError` per bad field."""

    details: list[FieldError]


class ExternalIdRequired(BadRequest):
    pass


class ProductImagesRequired(BadRequest):
    pass


class CustomerImageRequired(BadRequest):
    pass


class FileRequired(BadRequest):
    pass


class MultipartFileNotFound(BadRequest):
    pass


class InvalidImageInput(BadRequest):
    pass


class InvalidImage(BadRequest):
    pass


class CustomerImageFetchFailed(BadRequest):
    pass


class NotFound(APIError):
    """404."""


class ProductNotFound(NotFound):
    pass


class GenerationNotFound(NotFound):
    pass


class ImageNotFound(NotFound):
    pass


class Conflict(APIError):
    """409."""


class ReservedExternalId(Conflict):
    pass


class InsufficientCredits(APIError):
    """402: out of credits."""


class RateLimited(APIError):
    """429: over the account's rate limit; ``retry_after`` in seconds when the server said."""

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str,
        details: Any = None,
        endpoint: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            status=status, code=code, message=message, details=details, endpoint=endpoint
        )
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx."""


# --- other ------------------------------------------------------------------------------------


class InvalidResponse(GenlookError):
    """A 2xx answer whose body is not the documented shape."""

    def __init__(self, message: str, *, endpoint: str, status: int) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.endpoint}: HTTP {self.status}: {self.message}"


class GenerationFailed(GenlookError):
    """The generation ended FAILED (``error_code`` is set when the failure was typed)."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.generation_id = generation.generation_id
        self.error_code = generation.error_code
        self.error_message = generation.error_message
        super().__init__(
            f"generation {generation.generation_id} failed: "
            f"{generation.error_code or '-'}: {generation.error_message or ''}"
        )


class GenerationTimeout(GenlookError):
    """No terminal status within the wait timeout; ``last`` is the last status seen."""

    def __init__(self, generation_id: str, timeout: float, last: Generation | None) -> None:
        self.generation_id = generation_id
        self.timeout = timeout
        self.last = last
        status = last.status if last is not None else "unknown"
        super().__init__(
            f"generation {generation_id} not terminal after {timeout:g}s (last status {status})"
        )


# --- mapping ----------------------------------------------------------------------------------

CODE_TO_ERROR: Mapping[str, type[APIError]] = {
    "MISSING_API_KEY": AuthenticationError,
    "INVALID_API_KEY": AuthenticationError,
    "FORBIDDEN": PermissionDenied,
    "VALIDATION_FAILED": ValidationFailed,
    "EXTERNAL_ID_REQUIRED": ExternalIdRequired,
    "PRODUCT_IMAGES_REQUIRED": ProductImagesRequired,
    "CUSTOMER_IMAGE_REQUIRED": CustomerImageRequired,
    "FILE_REQUIRED": FileRequired,
    "MULTIPART_FILE_NOT_FOUND": MultipartFileNotFound,
    "INVALID_IMAGE_INPUT": InvalidImageInput,
    "INVALID_IMAGE": InvalidImage,
    "CUSTOMER_IMAGE_FETCH_FAILED": CustomerImageFetchFailed,
    "PRODUCT_NOT_FOUND": ProductNotFound,
    "GENERATION_NOT_FOUND": GenerationNotFound,
    "IMAGE_NOT_FOUND": ImageNotFound,
    "CUSTOMER_IMAGE_NOT_FOUND": ImageNotFound,
    "RESERVED_EXTERNAL_ID": ReservedExternalId,
    "INSUFFICIENT_CREDITS": InsufficientCredits,
    "QUOTA_EXCEEDED": InsufficientCredits,
    "RATE_LIMITED": RateLimited,
    "INTERNAL_ERROR": ServerError,
}

STATUS_TO_ERROR: Mapping[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    402: InsufficientCredits,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def error_class_for(status: int, code: str | None) -> type[APIError]:
    """By ``code`` first, then by status (class) for unknown or missing codes."""
    if code is not None and code in CODE_TO_ERROR:
        return CODE_TO_ERROR[code]
    if status in STATUS_TO_ERROR:
        return STATUS_TO_ERROR[status]
    if status >= 500:
        return ServerError
    return APIError


def _parse_field_errors(raw: Any) -> list[FieldError]:
    out: list[FieldError] = []
    if not isinstance(raw, list):
        return out
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        path = item.get("path", "")
        if isinstance(path, list):
            path = ".".join(str(p) for p in path)
        out.append(FieldError(path=str(path), message=str(item.get("message", ""))))
    return out


def api_error_from_response(
    *,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    endpoint: str,
    reason: str = "",
) -> APIError:
    """Build the right `APIError` from a non-2xx answer; tolerant of non-JSON bodies."""
    code: str | None = None
    message = ""
    details: Any = None
    envelope: Any = None
    if body:
        try:
            envelope = msgspec.json.decode(body)
        except msgspec.DecodeError:
            envelope = None
    if isinstance(envelope, Mapping):
        raw_code = envelope.get("code")
        if isinstance(raw_code, str) and raw_code:
            code = raw_code
        raw_message = envelope.get("message")
        if isinstance(raw_message, str):
            message = raw_message
        elif raw_message is not None:
            message = str(raw_message)
        details = envelope.get("details")
    if not message:
        message = reason or "error"
        if envelope is None and body:
            message += " (non-JSON body)"
    cls = error_class_for(status, code)
    if issubclass(cls, ValidationFailed):
        details = _parse_field_errors(details)
    if issubclass(cls, RateLimited):
        return cls(
            status=status,
            code=code,
            message=message,
            details=details,
            endpoint=endpoint,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    return cls(status=status, code=code, message=message, details=details, endpoint=endpoint)


__all__ = [
    "CODE_TO_ERROR",
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "CustomerImageFetchFailed",
    "CustomerImageRequired",
    "ExternalIdRequired",
    "FieldError",
    "FileRequired",
    "GenerationFailed",
    "GenerationNotFound",
    "GenerationTimeout",
    "GenlookError",
    "ImageNotFound",
    "InsufficientCredits",
    "InvalidImage",
    "InvalidImageInput",
    "InvalidResponse",
    "MultipartFileNotFound",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProductImagesRequired",
    "ProductNotFound",
    "RateLimited",
    "RequestNotSent",
    "ReservedExternalId",
    "ServerError",
    "TransportError",
    "ValidationFailed",
    "api_error_from_response",
    "error_class_for",
    "parse_retry_after",
]
