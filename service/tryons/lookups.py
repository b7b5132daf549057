"""What a try-on reads before it is accepted (its catalog product, its photo), remembered per
process so the common POST costs ONE Redis round trip instead of two.

A remembered value is only a guess: the accept script compares it with the stored value and
refuses to write when they differ (`StaleLookup`), and the request is then built again from
fresh reads. So a product replaced or deleted, or a photo expired, on any gateway is never
used: the check and the write are one atomic script, which is stricter than reading first.
"""

from __future__ import annotations

from dataclasses import dataclass


class StaleLookup(Exception):
    """A remembered catalog product or photo no longer matches Redis; nothing was written."""


@dataclass(frozen=True, slots=True)
class Expected:
    """Values the accept script must find unchanged (empty: nothing to check)."""

    catalog_key: str = ""
    external_id: str = ""
    product_raw: bytes = b""
    image_key: str = ""
    image_raw: bytes = b""

    def __bool__(self) -> bool:
        return bool(self.product_raw or self.image_raw)


class LookupCache:
    """Raw values by (Redis key, hash field), bounded: the oldest entry goes first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._raw: dict[tuple[str, str], bytes] = {}

    def get(self, key: str, field: str = "") -> bytes | None:
        return self._raw.get((key, field))

    def put(self, key: str, field: str, raw: bytes | None) -> None:
        if raw is None:
            self._raw.pop((key, field), None)
            return
        if len(self._raw) >= self._limit:
            del self._raw[next(iter(self._raw))]
        self._raw[(key, field)] = raw

    def forget(self, expected: Expected) -> None:
        if expected.product_raw:
            self._raw.pop((expected.catalog_key, expected.external_id), None)
        if expected.image_raw:
            self._raw.pop((expected.image_key, ""), None)
