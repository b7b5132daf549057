"""Request bodies decoded by msgspec, with its errors turned into the one error envelope."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from service.domain_errors import FieldError
from service.errors import ApiError

T = TypeVar("T")

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _dotted(path: str) -> str:
    """msgspec's `.products[0].title` -> Genlook's `products.0.title`."""
    # msgspec names a mapping's values `[...]` without the key; the mapping's path is kept.
    path = path.replace("[...]", "")
    return re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")


def field_error(exc: msgspec.ValidationError) -> FieldError:
    match = _AT.match(str(exc))
    message = match.group("message") if match else str(exc)
    path = _dotted(match.group("path") or "") if match else ""
    for pattern, text in ((_MISSING, "Required"), (_UNKNOWN, "Unknown field")):
        found = pattern.search(message)
        if found:
            path = f"{path}.{found.group('field')}" if path else found.group("field")
            message = text
    return FieldError(path=path or "body", message=message)


def decode_json(raw: bytes, model: type[T]) -> T:
    if not raw.strip():
        raise ApiError(
            400,
            "VALIDATION_FAILED",
            "The request body is empty.",
            details=[FieldError(path="body", message="Required")],
        )
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        raise ApiError(
            400,
            "VALIDATION_FAILED",
            "Request body failed validation. See `details` for per-field errors.",
            details=[field_error(exc)],
        ) from None
    except msgspec.DecodeError:
        raise ApiError(400, "MALFORMED_JSON", "The request body is not valid JSON.") from None
