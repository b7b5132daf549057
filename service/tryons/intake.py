"""Turning an accepted request into a try-on record: every check that can fail happens here,
before anything is written, so bad input changes nothing."""

from __future__ import annotations

import asyncio
import binascii
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from service import logs
from service.autopipeline import AutoPipeline
from service.domain_errors import Conflict, InvalidInput, NotFound, validation_failed
from service.identifiers import identifier_problem
from service.keys import Keys
from service.photos import PhotoStore
from service.products import CatalogProduct, product_not_found
from service.tryons.lookups import Expected, LookupCache
from service.tryons.models import (
    PersonDef,
    ProductDef,
    ProductIn,
    TryOnCreate,
    TryOnRecord,
)

RESERVED_PREFIX = "_anon_"
MAX_METADATA_BYTES = 4096


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def new_tryon_id() -> str:
    """`to_` + 20 url-safe base64 characters of 15 random bytes: `secrets.token_urlsafe(15)`
    without its three Python-level wrappers (~2k instructions less per try-on)."""
    return "to_" + binascii.b2a_base64(os.urandom(15), newline=False).translate(_URLSAFE).decode()


def _check_url(url: str, path: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise validation_failed(path, "Invalid url")


def check_identifier(value: str, path: str) -> None:
    """VALIDATION_FAILED at `path` unless `value` may be an externalId / externalUserId."""
    problem = identifier_problem(value)
    if problem is not None:
        raise validation_failed(path, problem)


def check_external_user_id(external_user_id: str) -> None:
    check_identifier(external_user_id, "externalUserId")


def check_external_id(external_id: str, path: str) -> None:
    check_identifier(external_id, path)
    if external_id.startswith(RESERVED_PREFIX):
        raise Conflict(
            "RESERVED_EXTERNAL_ID",
            f"externalId must not start with the reserved prefix '{RESERVED_PREFIX}'.",
        )


def product_definition(product: ProductIn, path: str) -> ProductDef:
    """An inline definition from the wire, with URL-only images (files are not kept)."""
    urls: list[str] = []
    classifications = []
    for i, image in enumerate(product.images or []):
        source = image.source
        if source.url is None or source.id is not None or source.file_key is not None:
            raise validation_failed(f"{path}.images.{i}.source", "Product images must be URLs")
        _check_url(source.url, f"{path}.images.{i}.source.url")
        urls.append(source.url)
        classifications.append(image.classifications)
    if not urls:
        raise InvalidInput("PRODUCT_IMAGES_REQUIRED", "A product definition needs an image.")
    return ProductDef(
        external_id=product.external_id,
        title=product.title,
        description=product.description,
        image_urls=urls,
        classifications=classifications if any(classifications) else [],
    )


def product_source(product: ProductIn) -> ProductDef | str:
    """The inline definition, or the externalId to look up in the app's catalog."""
    path = "products.0"
    if product.external_id is not None:
        check_external_id(product.external_id, f"{path}.externalId")
    is_reference = not (product.title or product.description or product.images)
    if not is_reference:
        return product_definition(product, path)
    if product.external_id is None:
        raise InvalidInput("PRODUCT_IMAGES_REQUIRED", "A product needs an externalId or images.")
    return product.external_id


def person_source(body: TryOnCreate, uploaded: Mapping[str, str]) -> PersonDef | str:
    """The person, or the gateway image id to look up."""
    source = body.person.image.source
    path = "person.image.source"
    given = [v for v in (source.id, source.url, source.file_key) if v is not None]
    if len(given) != 1:
        raise validation_failed(path, "Exactly one of id, url, fileKey is required")
    if source.url is not None:
        _check_url(source.url, f"{path}.url")
        return PersonDef(url=source.url)
    if source.file_key is not None:
        image_id = uploaded.get(source.file_key)
        if image_id is None:
            raise InvalidInput(
                "MULTIPART_FILE_NOT_FOUND",
                f"No multipart part named '{source.file_key}'.",
            )
        return PersonDef(image_id=image_id)
    assert source.id is not None
    return source.id


_catalog_product = msgspec.json.Decoder(CatalogProduct)


def _discard(fut: asyncio.Future[Any]) -> None:
    """Abandon a lookup whose answer is no longer needed, without asyncio logging it as an
    unretrieved error (the pipeline still consumes its reply in order)."""
    if not fut.done():
        fut.cancel()
    elif not fut.cancelled():
        fut.exception()


async def resolve(
    app: str,
    body: TryOnCreate,
    *,
    redis: AutoPipeline,
    keys: Keys,
    uploaded: Mapping[str, str],
    cache: LookupCache,
    fresh: bool,
    browser: bool,
) -> tuple[ProductDef, PersonDef, str | None, Expected]:
    """Product and person, the end user the stored photo was uploaded for (if any), plus what
    the accept script must find unchanged.

    Values remembered in `cache` are used unless `fresh`; the others are read, both in one
    round trip (issued in the same tick, they leave in one pipelined write). Reads the same
    keys as `Catalog.get` and `PhotoStore.get`.
    """
    product = product_source(body.products[0])
    person = person_source(body, uploaded)
    owner = None
    catalog_key = keys.catalog(app) if isinstance(product, str) else ""
    image_key = keys.image(person) if isinstance(person, str) else ""
    product_field = product if isinstance(product, str) else ""
    product_cached = None if fresh or not catalog_key else cache.get(catalog_key, product_field)
    image_cached = None if fresh or not image_key else cache.get(image_key)
    product_read = (
        redis.execute("HGET", catalog_key, product_field)
        if catalog_key and product_cached is None
        else None
    )
    image_read = redis.execute("GET", image_key) if image_key and image_cached is None else None
    try:
        product_raw = product_cached
        if product_read is not None:
            product_raw = await product_read
            cache.put(catalog_key, product_field, product_raw)
        image_raw = image_cached
        if image_read is not None:
            image_raw = await image_read
            cache.put(image_key, "", image_raw)
    finally:
        for read in (product_read, image_read):
            if read is not None:
                _discard(read)
    if catalog_key:
        if product_raw is None:
            raise product_not_found(product_field)
        product = _catalog_product.decode(product_raw).definition
    if image_key:
        image = None if image_raw is None else PhotoStore.decode(image_raw)
        # Another app's image id is indistinguishable from an unknown one, and so is another
        # end user's. A backend may use its app's photos stored for no user; a browser only
        # its own user's.
        owners = (body.external_user_id,) if browser else (None, body.external_user_id)
        if image is None or image.app != app:
            raise NotFound("IMAGE_NOT_FOUND", "Unknown or expired image id.")
        if body.external_user_id and image.external_user_id not in owners:
            raise NotFound("IMAGE_NOT_FOUND", "Unknown or expired image id.")
        person = PersonDef(image_id=image.id)
        owner = image.external_user_id
    assert isinstance(product, ProductDef)
    assert isinstance(person, PersonDef)
    expected = Expected(
        catalog_key=catalog_key,
        external_id=product_field,
        product_raw=product_cached or b"",
        image_key=image_key,
        image_raw=image_cached or b"",
    )
    return product, person, owner, expected


async def build_record(
    app: str,
    body: TryOnCreate,
    *,
    redis: AutoPipeline,
    keys: Keys,
    uploaded: Mapping[str, str],
    cache: LookupCache,
    fresh: bool = False,
    browser: bool = False,
    idempotency_key: str | None,
    deadline: float,
) -> tuple[TryOnRecord, Expected]:
    """The record to accept, and what `TryOnStore.accept` must find unchanged for it."""
    if len(body.products) != 1:
        raise validation_failed("products", "Exactly one product is supported")
    if body.metadata is not None and len(msgspec.json.encode(body.metadata)) > MAX_METADATA_BYTES:
        raise validation_failed("metadata", f"At most {MAX_METADATA_BYTES} bytes")
    if body.callback_url is not None:
        _check_url(body.callback_url, "callbackUrl")
    if body.external_user_id is not None:
        check_external_user_id(body.external_user_id)
    product, person, owner, expected = await resolve(
        app,
        body,
        redis=redis,
        keys=keys,
        uploaded=uploaded,
        cache=cache,
        fresh=fresh,
        browser=browser,
    )
    output = body.output
    now = time.time()
    record = TryOnRecord(
        id=new_tryon_id(),
        app=app,
        created_at=now,
        updated_at=now,
        product=product,
        person=person,
        # A try-on of a user's photo is that user's, named or not: their erase removes it and
        # its result (a picture of them), and Genlook's erase reaches its generation.
        external_user_id=body.external_user_id or owner,
        watermark=output.watermark if output else None,
        keep_for_days=output.keep_for_days if output else None,
        ai_label=output.ai_label if output else None,
        metadata=body.metadata,
        callback_url=body.callback_url,
        idempotency_key=idempotency_key,
        deadline_at=now + deadline,
        trace_id=logs.trace_id.get(),
    )
    return record, expected
