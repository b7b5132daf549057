"""Field readers that collect Zod-style issues (`{path, message}`) the way Genlook reports them.

Genlook validates with Zod, so clients may show these messages to developers; the wording copies
Zod 3's defaults ("Required", "Expected number, received string", ...). Paths are dot-joined with
numeric array indices, relative to the shape the client actually sent (a deprecated `product`
body reports `product.images.0.url`, not `products.0...`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from genlook_wire.errors import FieldIssue, validation_failed

Path = Sequence[str | int]


def received(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def join(path: Path) -> str:
    return ".".join(str(p) for p in path)


class Issues:
    def __init__(self) -> None:
        self.items: list[FieldIssue] = []

    def add(self, path: Path, message: str) -> None:
        self.items.append(FieldIssue(path=join(path), message=message))

    def expected(self, path: Path, expected: str, value: object) -> None:
        self.add(path, f"Expected {expected}, received {received(value)}")

    def raise_if_any(self) -> None:
        if self.items:
            raise validation_failed(self.items)

    # Each reader returns the value when it is valid, else None, and records why.

    def string(
        self, obj: dict[str, Any], key: str, path: Path, *, required: bool = False
    ) -> str | None:
        if key not in obj or (obj[key] is None and not required):
            if required:
                self.add([*path, key], "Required")
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.expected([*path, key], "string", value)
            return None
        return value

    def boolean(self, obj: dict[str, Any], key: str, path: Path) -> bool | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.expected([*path, key], "boolean", value)
            return None
        return value

    def obj(self, value: object, path: Path) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.expected(path, "object", value)
            return None
        return value

    def array(self, value: object, path: Path) -> list[Any] | None:
        if not isinstance(value, list):
            self.expected(path, "array", value)
            return None
        return value

    def integer(self, value: object, path: Path, *, minimum: int, maximum: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.expected(path, "number", value)
            return None
        if isinstance(value, float) and not value.is_integer():
            self.add(path, "Expected integer, received float")
            return None
        if value < minimum:
            self.add(path, f"Number must be greater than or equal to {minimum}")
            return None
        if value > maximum:
            self.add(path, f"Number must be less than or equal to {maximum}")
            return None
        return int(value)

    def retention(self, value: object, path: Path) -> int | None:
        """keepForDays / retentionDays: exactly 1, 3 or 7."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.expected(path, "number", value)
            return None
        if value not in (1, 3, 7):
            self.add(path, f"Invalid enum value. Expected 1 | 3 | 7, received {value}")
            return None
        return int(value)


def coerce_form_number(raw: str) -> float:
    """What `z.coerce.number()` does to a form string: anything unparsable becomes NaN."""
    try:
        return float(raw) if raw.strip() else math.nan
    except ValueError:
        return math.nan
