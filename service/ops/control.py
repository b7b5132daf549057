"""Everything the ops API reads and changes, over one Redis connection, and the snapshot that
`GET /ops/api/status` answers.

Everything lives in Redis under `{prefix}ops:` (service/keys.py), so every gateway and worker
of a deployment sees the same state and any of them can answer the ops API.
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from service.access.quotas import Quotas
from service.access.registry import AppRegistry
from service.keys import Keys
from service.ops.failed import FailedLists
from service.ops.heartbeats import Heartbeats, WorkerBeat
from service.ops.pauses import Pauses, PauseState
from service.ops.queue import QueueCounts, QueueView
from service.ops.retry import retry_tryon
from service.tryons.models import TryOnRecord
from service.tryons.store import TryOnStore


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    at: float
    queue: QueueCounts
    tryons_active: int
    tryons_failed_listed: int
    deliveries_pending: int
    deliveries_due_now: int
    deliveries_failed_listed: int
    # Result images in the gateway's object store (service/results/), from its index.
    results_stored_objects: int
    results_stored_bytes: int
    workers: list[WorkerBeat]
    intake_pause: PauseState | None
    processing_pause: PauseState | None


class OpsControl:
    def __init__(self, redis: Redis, keys: Keys, queue_name: str) -> None:
        self._redis = redis
        self._keys = keys
        self.pauses = Pauses(redis, keys)
        self.heartbeats = Heartbeats(redis, keys)
        self.queue = QueueView(redis, queue_name)
        self.failed = FailedLists(redis, keys)

    async def snapshot(self) -> Snapshot:
        now = time.time()
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.active_tryons)
            pipe.zcard(k.ops_failed_tryons)
            pipe.zcard(k.deliveries_due)
            pipe.zcount(k.deliveries_due, "-inf", now)
            pipe.zcard(k.ops_failed_deliveries)
            pipe.zcard(k.results_expiry)
            pipe.get(k.results_bytes)
            active, failed, pending, due_now, dead, objects, size = await pipe.execute()
        return Snapshot(
            at=now,
            queue=await self.queue.counts(now),
            tryons_active=int(active),
            tryons_failed_listed=int(failed),
            deliveries_pending=int(pending),
            deliveries_due_now=int(due_now),
            deliveries_failed_listed=int(dead),
            results_stored_objects=int(objects),
            results_stored_bytes=int(size or 0),
            workers=await self.heartbeats.live(),
            intake_pause=await self.pauses.get("intake"),
            processing_pause=await self.pauses.get("processing"),
        )

    async def retry(
        self,
        store: TryOnStore,
        tryon_id: str,
        deadline: float,
        *,
        quotas: Quotas,
        apps: AppRegistry,
    ) -> TryOnRecord:
        """service.ops.retry.retry_tryon over this connection and failed list."""
        return await retry_tryon(
            self._redis,
            self._keys,
            self.failed,
            store,
            tryon_id,
            deadline=deadline,
            quotas=quotas,
            apps=apps,
        )
