"""GDPR erase of one end user: upstream first (in every account the app used), then every
local trace.

Local traces of a user: try-on records (and their idempotency records, which name the try-on
and, for a browser's key, the user), their place in the sweeper's and the ops API's lists,
webhook deliveries of those try-ons (the event body carries the user id, metadata and result
URL) with their attempts and events still in the outbox, and photos with the cached references
to their upstream copies, the user's session tokens (revoked: the app mints a new one), and
the result cache's entries of their try-ons (keyed by user: no other user's entry names the
user's objects, service/results/reuse.py). The user's usage figures (their fields in the
app's per-user usage hashes) are deleted.
Rate counters name no one (their keys carry a digest). Offline tokens are not stored.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol

from redis.asyncio import Redis

from service.access.tokens import TokenVerifier
from service.accounts.directory import AccountDirectory
from service.accounts.models import KEY_REFUSED
from service.accounts.registry import UnknownAccount
from service.keys import Keys
from service.namespacing import upstream_user_id
from service.photos import PhotoStore
from service.results.objects import ResultObjects
from service.results.reuse import ResultReuse
from service.tryons.models import TERMINAL, ErrorInfo, TryOnRecord
from service.tryons.store import TryOnNotFound, TryOnStore
from service.usage.report import UsageReader
from service.webhooks.deliveries import DeliveryStore

log = logging.getLogger(__name__)


class EraseParts(Protocol):
    """What an erase reaches (service.resources.Resources has it): the wiring is passed down,
    never imported from here."""

    accounts: AccountDirectory
    redis: Redis
    keys: Keys
    photos: PhotoStore
    store: TryOnStore
    deliveries: DeliveryStore
    tokens: TokenVerifier
    results: ResultObjects
    reuse: ResultReuse
    usage: UsageReader


async def erase_customer(res: EraseParts, app: str, external_user_id: str) -> int:
    """Returns how many local records were deleted. Raises GenlookError if upstream failed in
    any account, before anything local is touched, so a retry erases everything (an erase
    already done upstream is repeated harmlessly)."""
    upstream = upstream_user_id(app, external_user_id)
    assert upstream is not None
    digests = []
    # Every account the app's photos or try-ons went to, and its pool's: the user's photos
    # and generations may live in any of them (a failover moves an app's traffic).
    for account_id in await res.accounts.registry.used_by(app):
        try:
            up = await res.accounts.upstream(account_id)
        except UnknownAccount:
            continue  # deleted: the gateway can no longer reach it
        digests.append(up.digest)
        status = await res.accounts.registry.status(account_id)
        if status.disabled or status.unavailable == KEY_REFUSED:
            # It cannot (refused key) or may not (disabled) be asked: were its refusal fatal,
            # no erase would ever run. Its copies expire with Genlook's retention.
            log.warning("erase skips upstream account %s: disabled or key refused", account_id)
            continue
        await up.client.delete_customer(upstream)
    k = res.keys
    members: set[bytes] = await res.redis.smembers(  # type: ignore[misc]
        k.customer_tryons(app, external_user_id)
    )
    tryon_ids = [m.decode() for m in members]
    records = [await res.store.get(tryon_id) for tryon_id in tryon_ids]
    # No try-on may complete from a result about to be deleted: the cache entries go first.
    await res.reuse.erase({r.reuse_key for r in records if r is not None and r.reuse_key})
    # The stored result images next: were the records deleted first, a failure here would
    # leave objects nothing points to until their retention ends.
    await res.results.delete(
        [r.stored_result.key for r in records if r is not None and r.stored_result is not None]
    )
    # Unfinished try-ons end first, through the store's state change: their batch counts them
    # (it would never complete otherwise) and their quota reservations come back. The events
    # that queues go with the user's deliveries below.
    for tryon_id, record in zip(tryon_ids, records, strict=True):
        if record is not None and record.status not in TERMINAL:
            with contextlib.suppress(TryOnNotFound):  # expired meanwhile: nothing to end
                await res.store.update(tryon_id, _erased)
    # The try-ons go first: a delivery of an event still on its way is then never created.
    async with res.redis.pipeline(transaction=True) as pipe:
        for tryon_id, record in zip(tryon_ids, records, strict=True):
            pipe.delete(k.tryon(tryon_id))
            pipe.zrem(k.active_tryons, tryon_id)
            pipe.zrem(k.ops_failed_tryons, tryon_id)
            if record is not None and record.idempotency_key is not None:
                pipe.delete(k.idempotency(app, record.idempotency_key))
        pipe.delete(k.customer_tryons(app, external_user_id))
        await pipe.execute()
    deliveries = await res.deliveries.erase_tryons(tryon_ids)
    images = await res.photos.erase_customer(app, external_user_id, digests)
    tokens = await res.tokens.revoke_user(app, external_user_id)
    figures = await res.usage.erase_user(app, external_user_id)
    return len(tryon_ids) + deliveries + images + tokens + figures


def _erased(record: TryOnRecord) -> TryOnRecord | None:
    """End an unfinished try-on of an erased user: canceled if never sent upstream (nothing
    spent), failed if its generation may be under way (its credit may be spent)."""
    if record.status in TERMINAL:
        return None
    record.status = "canceled" if record.cancelable else "failed"
    record.error = ErrorInfo("ERASED", "The end user was erased.")
    record.completed_at = time.time()
    return record
