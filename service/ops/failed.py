"""The failed lists (`ops:failed`, `ops:dlv-failed`): sorted sets by time, written and trimmed
(newest 10 000) by the try-on store's and the delivery store's terminal transitions, read here
and cleaned lazily."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from redis.asyncio import Redis

from service.keys import Keys
from service.tryons.models import TryOnRecord
from service.webhooks.deliveries import Delivery

# A listed failure: a try-on record or a delivery, both with a `status`.
_Failed = TypeVar("_Failed", TryOnRecord, Delivery)

_decode_record = msgspec.json.Decoder(TryOnRecord).decode
_decode_delivery = msgspec.json.Decoder(Delivery).decode


class FailedLists:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def tryons(self, limit: int = 50) -> list[TryOnRecord]:
        """The most recently failed try-ons, newest first. Ids whose record expired or is no
        longer failed (retried) leave the list as they are met."""

        async def load(ids: list[str]) -> list[TryOnRecord | None]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hget(self._keys.tryon(i), "doc")
                raws: list[bytes | None] = await pipe.execute()
            return [None if raw is None else _decode_record(raw) for raw in raws]

        return await self._still_failed(self._keys.ops_failed_tryons, limit, load)

    async def discard(self, tryon_id: str) -> bool:
        """Drop a try-on from the failed list (it stays failed); True if it was listed."""
        return bool(await self._redis.zrem(self._keys.ops_failed_tryons, tryon_id))

    async def deliveries(self, limit: int = 50) -> list[Delivery]:
        """Deliveries that ended failed, newest first; resent ones leave the list lazily."""

        async def load(ids: list[str]) -> list[Delivery | None]:
            raws: list[bytes | None] = await self._redis.mget([self._keys.delivery(i) for i in ids])
            return [None if raw is None else _decode_delivery(raw) for raw in raws]

        return await self._still_failed(self._keys.ops_failed_deliveries, limit, load)

    async def _still_failed(
        self,
        key: str,
        limit: int,
        load: Callable[[list[str]], Awaitable[list[_Failed | None]]],
    ) -> list[_Failed]:
        """The newest `limit` ids of a capped failed list, loaded; entries gone or no longer
        failed are dropped from the list as they are met."""
        ids = [i.decode() for i in await self._redis.zrevrange(key, 0, limit - 1)]
        if not ids:
            return []
        found: list[_Failed] = []
        stale: list[str] = []
        for i, item in zip(ids, await load(ids), strict=True):
            if item is None or item.status != "failed":
                stale.append(i)
            else:
                found.append(item)
        if stale:
            await self._redis.zrem(key, *stale)
        return found
