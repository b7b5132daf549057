"""Batches in Redis: the batch's hash (its document and counters), its ordered try-on ids and
its Idempotency-Key. Each try-on's finishing updates the counters in the try-on's own state
change (service/tryons/store.py), so progress and `batch.completed` never miss a try-on."""

from __future__ import annotations

import asyncio
import time

import msgspec
from redis.asyncio import Redis

from service.batches.models import (
    BatchCounts,
    BatchHead,
    BatchOut,
    BatchRecord,
    BatchStatus,
    BatchTryOn,
)
from service.keys import Keys
from service.tryons.models import TryOnStatus, iso
from service.tryons.store import LUA_COMPLETE_BATCH, TryOnNotFound, TryOnStore
from service.webhooks.events import event_id

_CLAIM_KEY = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# The try-ons accepted so far are listed (in item order), so a cancel reaches them. When
# accepting is over (ARGV[2] = '1') the batch runs, and the items that could not be accepted
# (ARGV[3]) count as failed: if every accepted one already finished, the batch completes here.
_ACCEPTED = (
    LUA_COMPLETE_BATCH
    + """
redis.call('DEL', KEYS[2])
if #ARGV > 7 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 8))
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '1' or redis.call('HGET', KEYS[1], 'status') ~= 'accepting' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running')
local dropped = tonumber(ARGV[3])
if dropped > 0 then
  redis.call('HINCRBY', KEYS[1], 'n:failed', dropped)
  local finished = redis.call('HINCRBY', KEYS[1], 'finished', dropped)
  if finished == tonumber(redis.call('HGET', KEYS[1], 'total')) then
    complete_batch(KEYS[1], KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  end
end
return 1
"""
)

# Try-ons canceled at once per cancel, so 1,000 of them take a few round trips, not 1,000.
_CANCEL_CONCURRENCY = 50


class BatchStore:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(BatchRecord)

    def __init__(self, redis: Redis, keys: Keys, tryons: TryOnStore, retention: float) -> None:
        self._redis = redis
        self._keys = keys
        self._tryons = tryons
        self._retention_ms = int(retention * 1000)
        self._claim = redis.register_script(_CLAIM_KEY)
        self._accepted = redis.register_script(_ACCEPTED)

    async def claim_key(self, app: str, key: str, value: str, ttl: float) -> str | None:
        """Record `value` under an Idempotency-Key unless one is there: the existing value."""
        found = await self._claim(
            keys=[self._keys.batch_idempotency(app, key)], args=[value, int(ttl * 1000)]
        )
        return None if found is None else bytes(found).decode()

    async def remembered(self, app: str, key: str) -> str | None:
        raw = await self._redis.get(self._keys.batch_idempotency(app, key))
        return None if raw is None else bytes(raw).decode()

    async def forget_key(self, app: str, key: str) -> None:
        await self._redis.delete(self._keys.batch_idempotency(app, key))

    async def create(self, batch: BatchRecord) -> None:
        head = BatchHead(
            id=batch.id,
            total=batch.total,
            created_at=iso(batch.created_at),
            metadata=batch.metadata,
        )
        k = self._keys.batch(batch.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                k,
                mapping={
                    "doc": self._encoder.encode(batch),
                    "total": batch.total,
                    "finished": 0,
                    "status": "accepting",
                    # The event's data without its closing brace: the script that finishes
                    # the batch appends the counts.
                    "head": self._encoder.encode(head)[:-1],
                    "callback": batch.callback_url or "",
                },
            )
            pipe.pexpire(k, self._retention_ms)
            await pipe.execute()

    async def accepted(
        self, batch: BatchRecord, tryon_ids: list[str], *, done: bool, not_accepted: int = 0
    ) -> None:
        """List the try-ons accepted so far; when `done`, the batch runs, and the
        `not_accepted` items (refused after the batch was checked) count as failed."""
        now = time.time()
        await self._accepted(
            keys=[
                self._keys.batch(batch.id),
                self._keys.batch_items(batch.id),
                self._keys.outbox,
                self._keys.webhook_endpoints(batch.app),
            ],
            args=[
                self._retention_ms,
                "1" if done else "0",
                not_accepted,
                batch.app,
                now,
                iso(now),
                event_id(batch.id, "batch.completed"),
                *tryon_ids,
            ],
        )

    async def get(self, batch_id: str) -> BatchRecord | None:
        raw = await self._redis.hget(self._keys.batch(batch_id), "doc")  # type: ignore[misc]
        return None if raw is None else self._decoder.decode(raw)

    async def status(self, batch_id: str) -> BatchStatus | None:
        raw = await self._redis.hget(self._keys.batch(batch_id), "status")  # type: ignore[misc]
        return None if raw is None else msgspec.convert(raw.decode(), BatchStatus)

    async def view(self, batch: BatchRecord, offset: int = 0, limit: int = 100) -> BatchOut:
        """The batch's progress and one page of its try-ons with their statuses."""
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.batch(batch.id))
            pipe.lrange(k.batch_items(batch.id), offset, offset + limit)
            fields, ids = await pipe.execute()
        n = {key.decode(): value.decode() for key, value in fields.items()}
        page = [i.decode() for i in ids]
        more = len(page) > limit
        page = page[:limit]
        statuses = await self._statuses(page)
        done = {s: int(n.get(f"n:{s}", 0)) for s in ("completed", "failed", "canceled")}
        completed_at = n.get("completed_at")
        return BatchOut(
            id=batch.id,
            status=msgspec.convert(n.get("status", "accepting"), BatchStatus),
            total=batch.total,
            counts=BatchCounts(pending=batch.total - int(n.get("finished", 0)), **done),
            created_at=iso(batch.created_at),
            tryons=[BatchTryOn(i, s) for i, s in zip(page, statuses, strict=True)],
            canceled="canceled_at" in n,
            completed_at=iso(float(completed_at)) if completed_at else None,
            metadata=batch.metadata,
            next_offset=offset + limit if more else None,
        )

    async def _statuses(self, tryon_ids: list[str]) -> list[TryOnStatus]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for tryon_id in tryon_ids:
                pipe.hget(self._keys.tryon(tryon_id), "status")
            raw = await pipe.execute()
        # `storing` is shown as `running`, as for a single try-on; an expired record as gone.
        shown = ("running" if s == b"storing" else (s.decode() if s else "canceled") for s in raw)
        return [msgspec.convert(s, TryOnStatus) for s in shown]

    async def mark_canceled(self, batch_id: str) -> None:
        await self._redis.hset(self._keys.batch(batch_id), "canceled_at", str(time.time()))  # type: ignore[misc]

    async def is_canceled(self, batch_id: str) -> bool:
        return bool(await self._redis.hexists(self._keys.batch(batch_id), "canceled_at"))  # type: ignore[misc]

    async def cancel_tryons(self, batch_id: str) -> int:
        """Cancel every try-on of the batch not yet sent upstream; how many were."""
        raw = await self._redis.lrange(self._keys.batch_items(batch_id), 0, -1)  # type: ignore[misc]
        ids = [i.decode() for i in raw]
        canceled = 0
        for start in range(0, len(ids), _CANCEL_CONCURRENCY):
            chunk = ids[start : start + _CANCEL_CONCURRENCY]
            done = await asyncio.gather(
                *(self._tryons.cancel(i) for i in chunk), return_exceptions=True
            )
            for outcome in done:
                if isinstance(outcome, TryOnNotFound):
                    continue  # expired with its retention: nothing left to cancel
                if isinstance(outcome, BaseException):
                    raise outcome
                canceled += outcome.status == "canceled"
        return canceled
