"""Genlook's response shapes for products, uploads and credits (generations: generations.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from service.genlook_compat.products import GenlookProduct
from service.tryons.models import iso


class ProductImageView(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    source_url: str
    role: str | None
    order: int
    classifications: dict[str, Any] | None = None


class ProductView(msgspec.Struct, frozen=True, rename="camel"):
    external_id: str
    title: str | None
    description: str | None
    metadata: Any
    auto_detect_image_roles: bool
    valid_for_days: int | None
    expires_at: str | None
    last_used_at: str | None
    created_at: str
    updated_at: str
    images: list[ProductImageView]


class GenlookProductPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[ProductView]
    next_cursor: str | None
    has_more: bool
    count: int


class UploadView(msgspec.Struct, frozen=True, rename="camel"):
    image_id: str
    image_url: str


class CreditsView(msgspec.Struct, frozen=True, rename="camel"):
    credit_balance: int


def _at(index: int, values: list[Any]) -> Any:
    return values[index] if index < len(values) else None


def product_view(found: GenlookProduct) -> ProductView:
    d, extras = found.product.definition, found.extras
    expires = found.expires_at
    return ProductView(
        external_id=found.external_id,
        title=d.title,
        description=d.description,
        metadata=found.product.metadata,
        auto_detect_image_roles=extras.auto_detect_image_roles,
        valid_for_days=extras.valid_for_days,
        expires_at=None if expires is None else iso(expires),
        last_used_at=None if extras.last_used_at is None else iso(extras.last_used_at),
        created_at=iso(found.product.created_at),
        updated_at=iso(found.product.updated_at),
        images=[
            ProductImageView(
                source_url=_at(i, extras.sources) or url,
                role=_at(i, extras.roles),
                order=i,
                classifications=_at(i, d.classifications),
            )
            for i, url in enumerate(d.image_urls)
        ],
    )
