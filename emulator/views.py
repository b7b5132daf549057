"""Wire shapes of responses. Optional generation fields are left out, never null (per the docs)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from emulator.clock import Clock, iso
from emulator.models import Generation, Product
from emulator.runtime import Runtime


class GenerationView(msgspec.Struct, omit_defaults=True):
    generationId: str
    status: str
    createdAt: str
    updatedAt: str
    resultImageUrl: str | UnsetType = UNSET
    errorCode: str | UnsetType = UNSET
    errorMessage: str | UnsetType = UNSET
    productExternalId: str | UnsetType = UNSET


def generation_view(
    gen: Generation, runtime: Runtime, base_url: str, *, with_product: bool = False
) -> GenerationView:
    clock = runtime.clock
    view = GenerationView(
        generationId=gen.id,
        status=gen.status,
        createdAt=iso(clock.at(gen.created_at)),
        updatedAt=iso(clock.at(gen.updated_at)),
    )
    if gen.status == "COMPLETED" and gen.result_key is not None:
        view.resultImageUrl = runtime.file_url(base_url, gen.result_key)
    if gen.status == "FAILED":
        view.errorMessage = gen.error_message or "The generation failed."
        if gen.error_code is not None:
            view.errorCode = gen.error_code
    if with_product:
        view.productExternalId = gen.product.external_id
    return view


def _time(clock: Clock, seconds: float | None) -> str | None:
    return None if seconds is None else iso(clock.at(seconds))


def product_view(product: Product, clock: Clock) -> dict[str, Any]:
    images: list[dict[str, Any]] = []
    for image in product.images:
        entry: dict[str, Any] = {
            "sourceUrl": image.source_url,
            "role": image.role,
            "order": image.order,
        }
        if image.classifications is not None:
            entry["classifications"] = image.classifications
        images.append(entry)
    return {
        "externalId": product.external_id,
        "title": product.title,
        "description": product.description,
        "metadata": product.metadata,
        "autoDetectImageRoles": product.auto_detect_image_roles,
        "validForDays": product.valid_for_days,
        "expiresAt": _time(clock, product.expires_at),
        "lastUsedAt": _time(clock, product.last_used_at),
        "createdAt": _time(clock, product.created_at),
        "updatedAt": _time(clock, product.updated_at),
        "images": images,
    }
