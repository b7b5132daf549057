"""Starting a try-on from Genlook's request: the product resolved as Genlook resolves it, the
person as the gateway's intake takes it, then `TryOnIntake.accept`, the one accept path.

Genlook answers some refusals at once that the gateway would otherwise learn only in a worker;
they stay synchronous here: an unknown product reference (404 PRODUCT_NOT_FOUND, from the
catalog), no credits (402 INSUFFICIENT_CREDITS: no usable account of the app's pool has
credits, by the last balances the gateway read).
Inline products are upserted into the catalog once the try-on is accepted, so the next
reference finds them, as Genlook's do; a one-shot product is registered under the `_anon_` id
returned as `productExternalId`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

import msgspec
from genlook_wire.ids import ANON_PREFIX
from genlook_wire.normalize import ProductInput, TryOnInput
from msgspec import UnsetType

from service.accounts.directory import AccountDirectory
from service.auth import Principal
from service.autopipeline import AutoPipeline
from service.domain_errors import QuotaExhausted
from service.genlook.models import KeepForDays
from service.genlook_compat.products import (
    DAY,
    Extras,
    GenlookCatalog,
    GenlookProduct,
    Image,
    ProductImages,
    check_files,
    images_required,
    merge,
    new_oneshot_id,
)
from service.keys import Keys
from service.products import product_not_found
from service.tryons.accept import TryOnIntake
from service.tryons.models import (
    ImageSourceIn,
    OutputIn,
    PersonImageIn,
    PersonIn,
    ProductDef,
    ProductImageIn,
    ProductIn,
    TryOnCreate,
    TryOnRecord,
)

# Genlook's mock engine: a product titled so renders for free (genlook-api.md §1).
MOCK_TITLE = "mock"


def insufficient_credits() -> QuotaExhausted:
    return QuotaExhausted("INSUFFICIENT_CREDITS", "Not enough credits; top up in the dashboard.")


@dataclass(frozen=True, slots=True)
class Started:
    record: TryOnRecord
    product_external_id: str


def _inline(definition: ProductDef) -> ProductIn:
    return ProductIn(
        external_id=definition.external_id,
        title=definition.title,
        description=definition.description,
        images=[
            ProductImageIn(source=ImageSourceIn(url=url), classifications=c)
            for url, c in zip(
                definition.image_urls,
                definition.classifications or [None] * len(definition.image_urls),
                strict=True,
            )
        ],
    )


class GenlookTryOns:
    def __init__(
        self,
        *,
        intake: TryOnIntake,
        catalog: GenlookCatalog,
        images: ProductImages,
        keys: Keys,
        pipeline: AutoPipeline,
        accounts: AccountDirectory,
    ) -> None:
        self._intake = intake
        self._catalog = catalog
        self._images = images
        self._keys = keys
        self._pipeline = pipeline
        self._accounts = accounts

    async def _product(
        self, app: str, item: ProductInput, files: dict[str, bytes], now: float
    ) -> tuple[GenlookProduct, bool, list[Image]]:
        """The product the try-on uses; whether the request (re)defines it (to be stored once
        the try-on is accepted) rather than references it; the images it stored to do so."""
        if item.is_reference:
            if item.external_id is None:
                raise images_required()
            found = await self._catalog.get(app, item.external_id, now)
            if found is None:
                raise product_not_found(item.external_id)
            return found, False, []
        images = None
        if not isinstance(item.images, UnsetType):
            images = await self._images.resolve(item.images, files)
        stored = [i for i in images or [] if i.source is not None]
        try:
            if item.external_id is None:
                oneshot = new_oneshot_id()
                made = merge(None, item, images, external_id=oneshot, origin="one-shot", now=now)
            else:
                existing = await self._catalog.get(app, item.external_id, now)
                made = merge(
                    existing, item, images, external_id=item.external_id, origin="inline", now=now
                )
        except BaseException:
            await self._images.discard(stored)
            raise
        return made, True, stored

    async def _reference(self, app: str, external_id: str, now: float) -> tuple[Extras, int | None]:
        """A catalog product's extras and the app's pool's known balance, read concurrently
        (the intake reads the definition itself, and answers PRODUCT_NOT_FOUND without one)."""
        extras_read = self._pipeline.execute("HGET", self._keys.compat_products(app), external_id)
        extras, balance = await asyncio.gather(extras_read, self._accounts.pool_balance(app))
        decoded = GenlookCatalog.decode_extras(extras)
        days = decoded.valid_for_days
        if days is not None and decoded.anchor + days * DAY <= now:
            raise product_not_found(external_id)
        return decoded, balance

    async def start(
        self, principal: Principal, req: TryOnInput, files: dict[str, bytes], raw: bytes
    ) -> Started:
        check_files(req.file_keys, files)
        now = time.time()
        app, item = principal.app, req.product
        found: GenlookProduct | None = None
        stored: list[Image] = []
        if item.is_reference and item.external_id and not item.external_id.startswith(ANON_PREFIX):
            # The hot path: a catalog product by reference, as Genlook's docs advise.
            extras, balance = await self._reference(app, item.external_id, now)
            sent = ProductIn(external_id=item.external_id)
            product_id, defines = item.external_id, False
            if balance is not None and balance < 1:
                catalog = await self._catalog.get(app, item.external_id, now)
                if catalog is None or catalog.product.definition.title != MOCK_TITLE:
                    raise insufficient_credits()
        else:
            found, defines, stored = await self._product(app, item, files, now)
            sent = _inline(found.product.definition)
            product_id = found.external_id
        try:
            if found is not None and found.product.definition.title != MOCK_TITLE:
                balance = await self._accounts.pool_balance(app)
                if balance is not None and balance < 1:
                    raise insufficient_credits()
            photo = _photo(req, files)
            accepted = await self._intake.accept(
                principal,
                _body(req, sent),
                raw=raw,
                photo=photo,
                photo_key=req.person.value if photo is not None else None,
            )
        except BaseException:
            # Refused: the product images this request stored belong to nothing.
            await self._images.discard(stored)
            raise
        if found is None:
            used = msgspec.structs.replace(extras, last_used_at=now, anchor=now)
            await self._pipeline.execute(
                "HSET",
                self._keys.compat_products(app),
                product_id,
                GenlookCatalog.encode_extras(used),
            )
        else:
            await self._catalog.put(app, found.used(now), defined=defines)
        return Started(accepted.record, product_id)


def _photo(req: TryOnInput, files: dict[str, bytes]) -> bytes | None:
    person = req.person
    return files.get(person.value) if person.kind == "fileKey" else None


def _body(req: TryOnInput, product: ProductIn) -> TryOnCreate:
    """The gateway's try-on for Genlook's request: the same person, user and output."""
    person = req.person
    source = ImageSourceIn(
        id=person.value if person.kind == "id" else None,
        url=person.value if person.kind == "url" else None,
        file_key=person.value if person.kind == "fileKey" else None,
    )
    return TryOnCreate(
        products=[product],
        person=PersonIn(image=PersonImageIn(source=source)),
        external_user_id=req.external_user_id,
        output=OutputIn(
            watermark=req.watermark,
            keep_for_days=cast(KeepForDays | None, req.keep_for_days),
            ai_label=req.ai_label,
        ),
    )
