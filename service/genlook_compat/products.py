"""Genlook's products over the gateway's catalog.

A product's definition (title, description, image URLs, classifications) and metadata live in
the app's catalog (service/products.py), so `/v1/products` and `/tryon/v1/products` show the
same catalog and a try-on referencing the product resolves it as any other. What Genlook's
shape has beyond that (where the product came from, `validForDays` and the use that restarts
it, `autoDetectImageRoles`, image roles, the `upload://` names of images sent as bytes) is kept
beside it, one hash per app. A one-shot product (a try-on's product with no `externalId`) gets
an `_anon_` id here and lives under its own key, out of the catalog and its listing, expiring
as Genlook's one-shot products do.

Image bytes sent by multipart are kept in the result store (service/results/objects.py) and
given to Genlook as a signed link to the gateway (`ProductImages`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

import msgspec
from genlook_wire.ids import ANON_PREFIX
from genlook_wire.normalize import ImageInput, ProductInput
from msgspec import UnsetType
from redis.asyncio import Redis

from service.domain_errors import InvalidInput
from service.imaging import sniff
from service.keys import Keys
from service.products import Catalog, CatalogProduct
from service.results.links import ResultLinks
from service.results.objects import ResultObjects
from service.tryons.models import ProductDef

DAY = 86400.0
Origin = Literal["catalog", "inline", "one-shot"]
# Genlook's lifetimes between uses: catalog products are kept until deleted.
DEFAULT_VALID_FOR_DAYS: dict[Origin, int | None] = {"catalog": None, "inline": 15, "one-shot": 7}
# Images sent as bytes outlive any product lifetime Genlook allows (365 days from last use);
# an image a product no longer uses is swept with the results when this ends.
PRODUCT_IMAGE_DAYS = 400


class Extras(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What Genlook's product has beyond the catalog's definition."""

    origin: Origin = "catalog"
    valid_for_days: int | None = None
    # When the product's lifetime started again: created, `validForDays` set, or used.
    anchor: float = 0.0
    last_used_at: float | None = None
    auto_detect_image_roles: bool = False
    roles: list[str | None] = msgspec.field(default_factory=list)
    # Per image, what the client named it when not its URL (`upload://…` for bytes).
    sources: list[str | None] = msgspec.field(default_factory=list)


class OneShot(msgspec.Struct, frozen=True):
    product: CatalogProduct
    extras: Extras


@dataclass(frozen=True, slots=True)
class GenlookProduct:
    external_id: str
    product: CatalogProduct
    extras: Extras

    @property
    def expires_at(self) -> float | None:
        days = self.extras.valid_for_days
        return None if days is None else self.extras.anchor + days * DAY

    def used(self, now: float) -> GenlookProduct:
        """The product once a generation used it: its lifetime starts again."""
        extras = msgspec.structs.replace(self.extras, last_used_at=now, anchor=now)
        return GenlookProduct(self.external_id, self.product, extras)

    def alive(self, now: float) -> bool:
        expires = self.expires_at
        return expires is None or expires > now


def images_required() -> InvalidInput:
    return InvalidInput("PRODUCT_IMAGES_REQUIRED", "A product needs at least one image.")


def missing_file(key: str) -> InvalidInput:
    return InvalidInput("MULTIPART_FILE_NOT_FOUND", f"No multipart file part named '{key}'.")


def check_files(keys: list[str], files: dict[str, bytes]) -> None:
    for key in keys:
        if key not in files:
            raise missing_file(key)


@dataclass(frozen=True, slots=True)
class Image:
    url: str  # what Genlook fetches
    source: str | None  # what the client sees instead, if not the URL
    role: str | None
    classifications: dict[str, object] | None


class ProductImages:
    """Product images sent as bytes: stored, and named to Genlook by a signed gateway link."""

    PATH = "/tryon/v1/product-images/"

    def __init__(self, objects: ResultObjects, links: ResultLinks) -> None:
        self._objects = objects
        self._links = links

    @staticmethod
    def object_key(name: str) -> str:
        return f"product-images/{name}"

    @staticmethod
    def subject(name: str) -> str:
        return f"product-image:{name}"

    async def store(self, data: bytes) -> Image:
        content_type = sniff(data)  # INVALID_IMAGE for anything but an image
        name = secrets.token_hex(16)
        expires = int(time.time() + PRODUCT_IMAGE_DAYS * DAY)
        await self._objects.put(
            self.object_key(name), data, content_type=content_type, expires_at=expires
        )
        query = await self._links.signed_query(self.subject(name), expires)
        url = self._links.absolute(f"{self.PATH}{name}?{query}")
        return Image(url=url, source=f"upload://{name}", role=None, classifications=None)

    async def discard(self, images: list[Image]) -> None:
        """Delete images `store` kept for a request that was then refused."""
        names = [i.source.removeprefix("upload://") for i in images if i.source is not None]
        await self._objects.delete([self.object_key(name) for name in names])

    async def resolve(self, inputs: list[ImageInput], files: dict[str, bytes]) -> list[Image]:
        images = []
        for entry in inputs:
            if entry.file_key is not None:
                data = files.get(entry.file_key)
                if data is None:
                    raise missing_file(entry.file_key)
                stored = await self.store(data)
                image = Image(stored.url, stored.source, entry.role, entry.classifications)
            else:
                assert entry.url is not None
                image = Image(entry.url, None, entry.role, entry.classifications)
            images.append(image)
        return images


def _set(value: object) -> bool:
    return not isinstance(value, UnsetType)


def merge(
    existing: GenlookProduct | None,
    patch: ProductInput,
    images: list[Image] | None,
    *,
    external_id: str,
    origin: Origin,
    now: float,
) -> GenlookProduct:
    """The product after a (partial) upsert: fields left out keep their value, `images`
    replaces the whole list. A new product needs images (PRODUCT_IMAGES_REQUIRED)."""
    if images is not None and not images:
        raise images_required()
    if existing is None and images is None:
        raise images_required()
    old = existing.product.definition if existing else ProductDef()
    extras = existing.extras if existing else Extras(origin=origin, anchor=now)
    if existing is None:
        extras = msgspec.structs.replace(extras, valid_for_days=DEFAULT_VALID_FOR_DAYS[origin])
    title = patch.title if not isinstance(patch.title, UnsetType) else old.title
    description = (
        patch.description if not isinstance(patch.description, UnsetType) else old.description
    )
    urls, classifications = old.image_urls, old.classifications
    if images is not None:
        urls = [i.url for i in images]
        found = [i.classifications for i in images]
        classifications = found if any(found) else []
        extras = msgspec.structs.replace(
            extras, roles=[i.role for i in images], sources=[i.source for i in images]
        )
    if not isinstance(patch.valid_for_days, UnsetType):
        extras = msgspec.structs.replace(extras, valid_for_days=patch.valid_for_days, anchor=now)
    if not isinstance(patch.auto_detect_image_roles, UnsetType):
        extras = msgspec.structs.replace(
            extras, auto_detect_image_roles=patch.auto_detect_image_roles
        )
    metadata = existing.product.metadata if existing else None
    if _set(patch.metadata):
        metadata = patch.metadata
    definition = ProductDef(
        external_id=None if origin == "one-shot" else external_id,
        title=title,
        description=description,
        image_urls=urls,
        classifications=classifications,
    )
    product = CatalogProduct(
        definition=definition,
        metadata=metadata,
        created_at=existing.product.created_at if existing else now,
        updated_at=now,
    )
    return GenlookProduct(external_id=external_id, product=product, extras=extras)


class GenlookCatalog:
    _extras = msgspec.json.Decoder(Extras)
    _oneshot = msgspec.json.Decoder(OneShot)
    _encode = msgspec.json.Encoder().encode

    def __init__(self, redis: Redis, keys: Keys, catalog: Catalog) -> None:
        self._redis = redis
        self._keys = keys
        self._catalog = catalog

    async def get(self, app: str, external_id: str, now: float) -> GenlookProduct | None:
        """The live product, or None (unknown, deleted or expired)."""
        if external_id.startswith(ANON_PREFIX):
            raw: bytes | None = await self._redis.get(self._keys.compat_oneshot(app, external_id))
            if raw is None:
                return None
            oneshot = self._oneshot.decode(raw)
            found = GenlookProduct(external_id, oneshot.product, oneshot.extras)
        else:
            product = await self._catalog.get(app, external_id)
            if product is None:
                return None
            found = GenlookProduct(external_id, product, await self._extras_of(app, external_id))
        return found if found.alive(now) else None

    async def _extras_of(self, app: str, external_id: str) -> Extras:
        raw: bytes | None = await self._redis.hget(  # type: ignore[misc]
            self._keys.compat_products(app), external_id
        )
        return self.decode_extras(raw)

    @classmethod
    def decode_extras(cls, raw: bytes | None) -> Extras:
        # A product made by `PUT /v1/products` is a catalog product kept until deleted.
        return Extras() if raw is None else cls._extras.decode(raw)

    @classmethod
    def encode_extras(cls, extras: Extras) -> bytes:
        return cls._encode(extras)

    async def put(self, app: str, found: GenlookProduct, *, defined: bool = True) -> None:
        """Store the product; `defined=False`: only what Genlook's shape adds changed (a use),
        so the catalog's definition (and its `updatedAt`) stays as it is."""
        if found.extras.origin == "one-shot":
            expires = found.expires_at
            assert expires is not None
            await self._redis.set(
                self._keys.compat_oneshot(app, found.external_id),
                self._encode(OneShot(found.product, found.extras)),
                pxat=int(expires * 1000),
            )
            return
        if defined:
            await self._catalog.put(
                app,
                found.product.definition,
                found.product.metadata,
                now=found.product.updated_at,  # the time the answer shows
            )
        await self._redis.hset(  # type: ignore[misc]
            self._keys.compat_products(app), found.external_id, self._encode(found.extras).decode()
        )

    async def delete(self, app: str, external_id: str) -> bool:
        if external_id.startswith(ANON_PREFIX):
            return bool(await self._redis.delete(self._keys.compat_oneshot(app, external_id)))
        await self._redis.hdel(self._keys.compat_products(app), external_id)  # type: ignore[misc]
        return await self._catalog.delete(app, external_id)

    async def page(
        self, app: str, *, limit: int, after: str | None, now: float
    ) -> tuple[list[GenlookProduct], str | None]:
        """The catalog's page (oldest first), expired products left out."""
        items, next_cursor = await self._catalog.page(app, limit=limit, after=after)
        found = []
        for product in items:
            external_id = product.definition.external_id
            assert external_id is not None
            one = GenlookProduct(external_id, product, await self._extras_of(app, external_id))
            if one.alive(now):
                found.append(one)
        return found, next_cursor


def new_oneshot_id() -> str:
    """Shaped like Genlook's: `_anon_` + 32 hex characters."""
    return ANON_PREFIX + secrets.token_hex(16)
