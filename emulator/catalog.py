"""Product upserts, shared by `POST /products` and inline products on `/try-on`.

`prepare` builds the would-be product without storing it, so a request that fails a later
check (credits, person image) leaves the catalog untouched.
"""

from __future__ import annotations

import dataclasses

from genlook_wire.normalize import ImageInput, ProductInput
from msgspec import UnsetType

from emulator.errors import ApiError
from emulator.ids import upload_ref
from emulator.images import validate
from emulator.models import DAY, Origin, Product, ProductImage
from emulator.state import Store

DEFAULT_VALID_FOR_DAYS: dict[Origin, int | None] = {"catalog": None, "inline": 15, "one-shot": 7}


def images_required() -> ApiError:
    return ApiError(400, "PRODUCT_IMAGES_REQUIRED", "A product needs at least one image.")


def missing_file(key: str) -> ApiError:
    return ApiError(
        400, "MULTIPART_FILE_NOT_FOUND", f"No multipart file part named '{key}' was sent."
    )


def check_files(keys: list[str], files: dict[str, bytes]) -> None:
    for key in keys:
        if key not in files:
            raise missing_file(key)


def _images(inputs: list[ImageInput], files: dict[str, bytes]) -> list[ProductImage]:
    images: list[ProductImage] = []
    for order, entry in enumerate(inputs):
        if entry.file_key is not None:
            data = files.get(entry.file_key)
            if data is None:
                raise missing_file(entry.file_key)
            validate(data)
            source, stored = upload_ref(), data
        else:
            assert entry.url is not None
            source, stored = entry.url, None
        images.append(
            ProductImage(
                source_url=source,
                order=order,
                role=entry.role,
                classifications=entry.classifications,
                data=stored,
            )
        )
    return images


def prepare(
    store: Store,
    *,
    owner: str,
    external_id: str,
    patch: ProductInput,
    files: dict[str, bytes],
    now: float,
    origin: Origin,
) -> Product:
    existing = store.product(owner, external_id, now)
    images = None if isinstance(patch.images, UnsetType) else _images(patch.images, files)
    if images is not None and not images:
        raise images_required()
    if existing is None:
        if images is None:
            raise images_required()
        product = Product(
            owner=owner,
            external_id=external_id,
            origin=origin,
            seq=store.next_seq(),
            created_at=now,
            updated_at=now,
            images=images,
            valid_for_days=DEFAULT_VALID_FOR_DAYS[origin],
        )
    else:
        product = dataclasses.replace(existing, updated_at=now)
        if images is not None:
            product.images = images
    if not isinstance(patch.title, UnsetType):
        product.title = patch.title
    if not isinstance(patch.description, UnsetType):
        product.description = patch.description
    if not isinstance(patch.metadata, UnsetType):
        product.metadata = patch.metadata
    if not isinstance(patch.auto_detect_image_roles, UnsetType):
        product.auto_detect_image_roles = patch.auto_detect_image_roles
    if not isinstance(patch.valid_for_days, UnsetType):
        product.valid_for_days = patch.valid_for_days
        product.expires_at = _expiry(product.valid_for_days, now)
    elif existing is None:
        product.expires_at = _expiry(product.valid_for_days, now)
    return product


def _expiry(valid_for_days: int | None, now: float) -> float | None:
    return None if valid_for_days is None else now + valid_for_days * DAY


def commit(store: Store, product: Product) -> None:
    store.products[(product.owner, product.external_id)] = product
