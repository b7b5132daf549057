"""Products: each app's catalog in the gateway, and what the fleet knows exists upstream.

The catalog holds the definitions try-ons may reference by `externalId`. The product cache
remembers, per upstream product id, the fingerprint of the definition Genlook last accepted:
a try-on whose definition matches is sent as the cheap reference call; anything else (a miss,
a changed definition, an expired entry) is sent as an inline upsert. Cache entries live a little
shorter than Genlook keeps the product (15 days from last use for inline products, 7 for
one-shot ones) and every use refreshes them, as every generation refreshes Genlook's timer.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec
from redis.asyncio import Redis

from service.domain_errors import NotFound
from service.keys import Keys
from service.tryons.models import ProductDef


class ProductImageOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    source_url: str
    order: int
    classifications: dict[str, Any] | None = None


class CatalogProduct(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    definition: ProductDef
    metadata: dict[str, Any] | None = None
    created_at: float
    updated_at: float


def fingerprint(definition: ProductDef) -> str:
    """Identifies what Genlook was told about a product; the external id is not part of it."""
    material = msgspec.json.encode(
        [
            definition.title,
            definition.description,
            definition.image_urls,
            definition.classifications,
        ]
    )
    return hashlib.sha256(material).hexdigest()[:32]


def product_not_found(external_id: str) -> NotFound:
    """No product `external_id` in the app's catalog (what a reference to it answers too)."""
    return NotFound("PRODUCT_NOT_FOUND", f"Product '{external_id}' not found.")


class Catalog:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(CatalogProduct)

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def put(
        self,
        app: str,
        definition: ProductDef,
        metadata: dict[str, Any] | None,
        *,
        now: float | None = None,
    ) -> tuple[CatalogProduct, bool]:
        """Create or replace at `now` (default: the current time; a caller answering with its
        own view of the product passes the time it shows); returns (product, created)."""
        assert definition.external_id is not None
        now = time.time() if now is None else now
        previous = await self.get(app, definition.external_id)
        product = CatalogProduct(
            definition=definition,
            metadata=metadata,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._keys.catalog(app),
                definition.external_id,
                self._encoder.encode(product).decode(),
            )
            pipe.zadd(
                self._keys.catalog_order(app), {definition.external_id: product.created_at}, nx=True
            )
            await pipe.execute()
        return product, previous is None

    async def get(self, app: str, external_id: str) -> CatalogProduct | None:
        raw: bytes | None = await self._redis.hget(  # type: ignore[misc]
            self._keys.catalog(app), external_id
        )
        return None if raw is None else self._decoder.decode(raw)

    async def delete(self, app: str, external_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.catalog(app), external_id)
            pipe.zrem(self._keys.catalog_order(app), external_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def page(
        self, app: str, *, limit: int, after: str | None
    ) -> tuple[list[CatalogProduct], str | None]:
        """Oldest first; `after` is the last externalId of the previous page."""
        order = self._keys.catalog_order(app)
        start = 0
        if after is not None:
            rank = await self._redis.zrank(order, after)
            start = 0 if rank is None else rank + 1
        ids = [i.decode() for i in await self._redis.zrange(order, start, start + limit)]
        has_more = len(ids) > limit
        ids = ids[:limit]
        raws: list[bytes | None] = (
            await self._redis.hmget(self._keys.catalog(app), ids)  # type: ignore[misc]
            if ids
            else []
        )
        items = [self._decoder.decode(r) for r in raws if r is not None]
        return items, (ids[-1] if has_more and ids else None)


class ProductCache:
    """What exists upstream, per upstream account: an entry from another account (another key,
    a restarted emulator at another address) would send a reference to a product that account
    never had. One-shot ids are per app too, as every upstream product id is."""

    def __init__(self, redis: Redis, keys: Keys, *, inline_ttl: float, oneshot_ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self._inline_ms = int(inline_ttl * 1000)
        self._oneshot_ms = int(oneshot_ttl * 1000)

    async def known(self, account: str, upstream_id: str, fp: str) -> bool:
        cached: bytes | None = await self._redis.get(self._keys.product_cache(account, upstream_id))
        return cached is not None and cached.decode() == fp

    async def remember(self, account: str, upstream_id: str, fp: str) -> None:
        key = self._keys.product_cache(account, upstream_id)
        await self._redis.set(key, fp, px=self._inline_ms)

    async def forget(self, account: str, upstream_id: str) -> None:
        await self._redis.delete(self._keys.product_cache(account, upstream_id))

    async def oneshot_id(self, account: str, app: str, fp: str) -> str | None:
        cached: bytes | None = await self._redis.get(self._keys.oneshot_cache(account, app, fp))
        return None if cached is None else cached.decode()

    async def remember_oneshot(self, account: str, app: str, fp: str, anon_id: str) -> None:
        key = self._keys.oneshot_cache(account, app, fp)
        await self._redis.set(key, anon_id, px=self._oneshot_ms)

    async def forget_oneshot(self, account: str, app: str, fp: str) -> None:
        await self._redis.delete(self._keys.oneshot_cache(account, app, fp))
