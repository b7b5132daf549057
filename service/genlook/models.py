"""Wire models of Genlook's Try-On API v1, as ``msgspec.Struct``s.

Field names are snake_case in Python and camelCase on the wire (``rename="camel"``); fields
left at their default are not sent (``omit_defaults=True``). Responses decode tolerantly:
unknown fields are ignored and optional fields may be ``null`` or absent. Ids are opaque strings
that may contain ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

GenerationStatus = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"COMPLETED", "FAILED"})
KeepForDays = Literal[1, 3, 7]


# --- requests ---------------------------------------------------------------------------------


class ImageSource(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """Exactly one of ``id`` (an uploaded imageId), ``url`` or ``file_key`` (a multipart part)."""

    id: str | None = None
    url: str | None = None
    file_key: str | None = None

    def __post_init__(self) -> None:
        given = sum(v is not None for v in (self.id, self.url, self.file_key))
        if given != 1:
            raise ValueError("ImageSource needs exactly one of id, url, file_key")


class ProductImage(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    source: ImageSource
    classifications: dict[str, Any] | None = None

    @classmethod
    def from_url(cls, url: str) -> ProductImage:
        return cls(source=ImageSource(url=url))

    @classmethod
    def from_file_key(cls, file_key: str) -> ProductImage:
        return cls(source=ImageSource(file_key=file_key))


class ProductInput(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """One product of a try-on: a reference (only ``external_id``), an inline upsert, or a
    one-shot product (no ``external_id``)."""

    external_id: str | None = None
    title: str | None = None
    description: str | None = None
    images: list[ProductImage] | None = None


class PersonImage(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    source: ImageSource


class Person(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    image: PersonImage

    @classmethod
    def from_image_id(cls, image_id: str) -> Person:
        return cls(image=PersonImage(source=ImageSource(id=image_id)))

    @classmethod
    def from_url(cls, url: str) -> Person:
        return cls(image=PersonImage(source=ImageSource(url=url)))

    @classmethod
    def from_file_key(cls, file_key: str) -> Person:
        return cls(image=PersonImage(source=ImageSource(file_key=file_key)))


class Output(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    watermark: bool | None = None
    keep_for_days: KeepForDays | None = None
    ai_label: bool | None = None


class TryOnRequest(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """Body of ``POST /try-on`` and ``POST /try-on/sync`` (the 1.4 canonical shape)."""

    products: list[ProductInput]
    person: Person
    external_user_id: str | None = None
    output: Output | None = None


class ProductUpsert(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """Body of ``POST /products``. Fields left ``UNSET`` are not sent (kept as they are
    upstream); ``valid_for_days=None`` is sent as ``null`` (kept forever)."""

    external_id: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    images: list[ProductImage] | UnsetType = UNSET
    valid_for_days: int | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    auto_detect_image_roles: bool | UnsetType = UNSET


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file sent in a multipart request; the mapping key is the form field (= ``fileKey``)."""

    data: bytes = field(repr=False)
    filename: str
    content_type: str


# --- responses --------------------------------------------------------------------------------


class UploadedImage(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    image_id: str
    image_url: str


class TryOnCreated(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    generation_id: str
    status: GenerationStatus
    product_external_id: str


class Generation(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """``GET /generations/:id``; also the body of ``POST /try-on/sync`` (with
    ``product_external_id``)."""

    generation_id: str
    status: GenerationStatus
    created_at: datetime
    updated_at: datetime
    result_image_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    product_external_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ProductImageInfo(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    source_url: str
    order: int | None = None
    role: str | None = None
    classifications: dict[str, Any] | None = None


class Product(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    external_id: str
    created_at: datetime
    updated_at: datetime
    title: str | None = None
    description: str | None = None
    images: list[ProductImageInfo] | None = None
    metadata: Any = None
    auto_detect_image_roles: bool | None = None
    valid_for_days: int | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None


class ProductPage(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    items: list[Product]
    has_more: bool
    count: int
    next_cursor: str | None = None


class Credits(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    credit_balance: int


__all__ = [
    "TERMINAL_STATUSES",
    "Credits",
    "FilePart",
    "Generation",
    "GenerationStatus",
    "ImageSource",
    "KeepForDays",
    "Output",
    "Person",
    "PersonImage",
    "Product",
    "ProductImage",
    "ProductImageInfo",
    "ProductInput",
    "ProductPage",
    "ProductUpsert",
    "TryOnCreated",
    "TryOnRequest",
    "UploadedImage",
]
