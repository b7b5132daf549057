"""GDPR erase of one end user: upstream first, then every local trace."""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from service.genlook.client import GenlookClient
from service.keys import Keys
from service.namespacing import upstream_account, upstream_user_id
from service.photos import PhotoStore
from service.results.objects import ResultObjects
from service.settings import Settings
from service.tryons.store import TryOnStore


class EraseParts(Protocol):
    """What an erase reaches (service.resources.Resources has it): the wiring is passed down,
    never imported from here."""

    genlook: GenlookClient
    redis: Redis
    keys: Keys
    photos: PhotoStore
    settings: Settings
    store: TryOnStore
    results: ResultObjects


async def erase_customer(res: EraseParts, app: str, external_user_id: str) -> int:
    """Returns how many local records were deleted. Raises GenlookError if upstream failed,
    before anything local is touched, so a retry erases everything."""
    upstream = upstream_user_id(app, external_user_id)
    assert upstream is not None
    await res.genlook.delete_customer(upstream)
    k = res.keys
    members: set[bytes] = await res.redis.smembers(  # type: ignore[misc]
        k.customer_tryons(app, external_user_id)
    )
    tryon_ids = [m.decode() for m in members]
    # The stored result images first: were the records deleted first, a failure here would
    # leave objects nothing points to until their retention ends.
    records = [await res.store.get(tryon_id) for tryon_id in tryon_ids]
    await res.results.delete(
        [r.stored_result.key for r in records if r is not None and r.stored_result is not None]
    )
    if tryon_ids:
        async with res.redis.pipeline(transaction=True) as pipe:
            for tryon_id in tryon_ids:
                pipe.delete(k.tryon(tryon_id))
                pipe.zrem(k.active_tryons, tryon_id)
            pipe.delete(k.customer_tryons(app, external_user_id))
            await pipe.execute()
    account = upstream_account(res.settings.genlook)
    images = await res.photos.erase_customer(app, external_user_id, account)
    return len(tryon_ids) + images
