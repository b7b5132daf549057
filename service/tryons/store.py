"""Try-on records in Redis: atomic accept (record + idempotency + job), CAS state changes, events.

A record is a hash {rev, status, doc}. Every change goes through one compare-and-set script on
`rev`, so two processes never overwrite each other's progress (a worker resuming a job after a
crash, the sweeper, a cancel from the API). Each change publishes the public view on the try-on's
channel in the same script, so a waiter that reads the record after subscribing misses nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable

import msgspec
from redis.asyncio import Redis

from service import jobs
from service.access.quotas import Quotas
from service.autopipeline import AutoPipeline, Script
from service.keys import Keys
from service.metrics import LUA_APPLY, encode_increments, field, observations
from service.tryons.lookups import Expected, StaleLookup
from service.tryons.models import TERMINAL, TryOnOut, TryOnRecord, iso, public_view, spends_credit
from service.usage.counting import LUA_USAGE, NOTHING, UsageCounter
from service.webhooks.events import EVENT_FOR_STATUS, event_body, event_id

_ACCEPT = (
    LUA_USAGE
    + """
if ARGV[14] ~= '' and redis.call('HGET', KEYS[7], ARGV[15]) ~= ARGV[14] then return 0 end
if ARGV[16] ~= '' and redis.call('GET', KEYS[8]) ~= ARGV[16] then return 0 end
if ARGV[11] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return existing end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('HSET', KEYS[2], 'rev', 1, 'status', ARGV[4], 'doc', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[13])
if ARGV[12] == '1' then
  redis.call('SADD', KEYS[4], ARGV[13])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
redis.call('SET', KEYS[5], ARGV[7], 'PX', ARGV[9])
redis.call('ZADD', KEYS[6], ARGV[8], ARGV[10])
redis.call('HINCRBYFLOAT', KEYS[9], 'tryon_accepted', 1)
apply_usage(10, 17)
return false
"""
)

# The batch's last try-on is over: it completes, and its one `batch.completed` event goes to the
# outbox, in the caller's step (a try-on's state change, or the end of the batch's accept).
LUA_COMPLETE_BATCH = """
local function complete_batch(batch, outbox, endpoints, app, now, now_iso, event)
  redis.call('HSET', batch, 'status', 'completed', 'completed_at', now)
  local n = redis.call('HMGET', batch, 'n:completed', 'n:failed', 'n:canceled', 'callback')
  local data = redis.call('HGET', batch, 'head') .. ',"status":"completed","counts":{' ..
    '"completed":' .. (n[1] or '0') .. ',"failed":' .. (n[2] or '0') ..
    ',"canceled":' .. (n[3] or '0') .. '},"completedAt":"' .. now_iso .. '"}'
  local callback = n[4] or ''
  if callback ~= '' or redis.call('ZCARD', endpoints) > 0 then
    redis.call('XADD', outbox, '*', 'id', event, 'type', 'batch.completed',
               'app', app, 'tryon', '', 'callback', callback,
               'body', '{"type":"batch.completed","timestamp":"' .. now_iso ..
               '","data":' .. data .. '}', 'trace', '')
  end
end
"""

_UPDATE = (
    LUA_APPLY
    + LUA_USAGE
    + LUA_COMPLETE_BATCH
    + """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev then return -1 end
if rev ~= ARGV[1] then return 0 end
local next = tonumber(rev) + 1
redis.call('HSET', KEYS[1], 'rev', next, 'status', ARGV[2], 'doc', ARGV[3])
if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[5]) end
-- The ops API's list of failed try-ons (newest 10000), in the same step as the failure.
if ARGV[2] == 'failed' then
  redis.call('ZADD', KEYS[7], ARGV[13], ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -10001)
end
if ARGV[6] ~= '' then redis.call('PUBLISH', KEYS[3], ARGV[6]) end
-- The event goes to the outbox in the same step as the change: a crash cannot separate them.
-- Only when it has somewhere to go: a callback URL, or endpoints registered by the app.
if ARGV[7] ~= '' and (ARGV[10] ~= '' or redis.call('ZCARD', KEYS[5]) > 0) then
  redis.call('XADD', KEYS[4], '*', 'id', ARGV[11], 'type', ARGV[7], 'app', ARGV[9],
             'tryon', ARGV[5], 'callback', ARGV[10], 'body', ARGV[8], 'trace', ARGV[14])
end
-- A batch's try-on finishing (counted once, even if an operator retries it): the batch's
-- progress, and when it is the last, the batch's one `batch.completed` event in the same step.
if ARGV[15] ~= '' and ARGV[4] == '1' and redis.call('EXISTS', KEYS[8]) == 1
   and redis.call('SADD', KEYS[9], ARGV[5]) == 1 then
  local ttl = redis.call('PTTL', KEYS[8])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[9], ttl) end
  redis.call('HINCRBY', KEYS[8], 'n:' .. ARGV[2], 1)
  local finished = redis.call('HINCRBY', KEYS[8], 'finished', 1)
  if finished == tonumber(redis.call('HGET', KEYS[8], 'total')) then
    complete_batch(KEYS[8], KEYS[4], KEYS[5], ARGV[9], ARGV[13], ARGV[16], ARGV[17])
  end
  redis.call('PUBLISH', KEYS[10], ARGV[2])
end
apply_metrics(KEYS[6], ARGV[12])
apply_usage(11, 18)  -- after the batch's keys and arguments
return next
"""
)


Mutation = Callable[[TryOnRecord], TryOnRecord | None]
# The try-on as clients see it (service/results/links.py adds the result's link).
View = Callable[[TryOnRecord], Awaitable[TryOnOut]]


async def _plain_view(record: TryOnRecord) -> TryOnOut:
    return public_view(record)


def transition_metrics(before: str, after: TryOnRecord) -> list[tuple[str, float]]:
    """What a state change adds to the fleet's metrics (written in the same script)."""
    out: list[tuple[str, float]] = []
    if before == "queued" and after.started_at is not None:
        out += observations("queue_wait", after.started_at - after.created_at)
    if after.status in TERMINAL and after.completed_at is not None:
        out.append((field("tryon_finished", status=after.status), 1.0))
        out += observations("end_to_end", after.completed_at - after.created_at)
        if after.create_started_at is not None and after.generation_id is not None:
            out += observations("upstream", after.completed_at - after.create_started_at)
    if before in TERMINAL and after.status not in TERMINAL:
        # An ops retry reopens it: it finishes once, with its last outcome.
        out.append((field("tryon_finished", status=before), -1.0))
    if spends_credit(before, after):
        out.append(("credits_spent", 1.0))
    if after.status == "completed" and after.reused_from is not None and before not in TERMINAL:
        # Completed from an identical try-on's stored result: the credit it would have cost.
        out += [(field("result_cache", result="hit"), 1.0), ("credits_saved", 1.0)]
    return out


class TryOnNotFound(LookupError):
    pass


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""

    def __init__(self, tryon_id: str) -> None:
        super().__init__(tryon_id)
        self.tryon_id = tryon_id


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


class TryOnStore:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(TryOnRecord)

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        queue_name: str,
        pipeline: AutoPipeline | None = None,
        *,
        quotas: Quotas,
        view: View = _plain_view,
        usage: UsageCounter | None = None,
    ) -> None:
        self._redis = redis
        # Usage figures, counted in the accept and update scripts (None: a store built for a
        # test of something else counts none).
        self._usage = usage
        self._view = view
        # Reservations given back when a try-on ends without spending a credit.
        self._quotas = quotas
        self._keys = keys
        self._queue = queue_name
        # The request path (accept, get) goes through the gateway's auto-pipeline when there is
        # one; workers keep redis-py. Both speak to the same keys with the same scripts.
        self._pipeline = pipeline
        self._accept = redis.register_script(_ACCEPT)
        self._accept_pipelined = Script(pipeline, _ACCEPT) if pipeline else None
        self._update = redis.register_script(_UPDATE)
        self.queue = jobs.JobQueue(redis, queue_name)

    @property
    def keys(self) -> Keys:
        return self._keys

    async def accept(
        self,
        record: TryOnRecord,
        *,
        idempotency_key: str | None,
        request_fingerprint: str,
        idempotency_ttl: float,
        retention: float,
        expected: Expected | None = None,
        defer: float = 0.0,
    ) -> tuple[TryOnRecord, bool]:
        """Persist a new try-on and its job atomically; or return the one the key already made.
        `defer`: seconds before its job is due (arq takes no job before its score).

        Returns (record, created). Raises IdempotencyConflict when the key was used with
        another body, and StaleLookup (nothing written) when a value in `expected` changed.
        """
        e = expected or Expected()
        k = self._keys
        job_id = jobs.tryon_job_id(record.id)
        job, score = jobs.encode_job(jobs.RUN_TRYON, record.id)
        customer = record.external_user_id
        counted = self._usage.accepted(record) if self._usage else NOTHING
        run = self._accept_pipelined or self._accept
        existing = await run(
            keys=[
                k.idempotency(record.app, idempotency_key or "-"),
                k.tryon(record.id),
                k.active_tryons,
                k.customer_tryons(record.app, customer or "-"),
                jobs.job_key(job_id),
                self._queue,
                e.catalog_key or k.tryon(record.id),
                e.image_key or k.tryon(record.id),
                k.metrics,
                *counted.keys,
            ],
            args=[
                f"{record.id} {request_fingerprint}",
                int(idempotency_ttl * 1000),
                self._encoder.encode(record),
                record.status,
                record.deadline_at,
                int(retention * 1000),
                job,
                score + int(defer * 1000),
                jobs.JOB_EXPIRY_MS,
                job_id,
                "1" if idempotency_key else "0",
                "1" if customer else "0",
                record.id,
                e.product_raw,
                e.external_id,
                e.image_raw,
                *counted.args,
            ],
        )
        if existing is None:
            return record, True
        if existing == 0:
            raise StaleLookup(record.id)
        existing_id, existing_fp = existing.decode().split(" ", 1)
        if existing_fp != request_fingerprint:
            raise IdempotencyConflict(existing_id)
        prior = await self.get(existing_id)
        if prior is None:  # the record expired before its idempotency key did
            raise TryOnNotFound(existing_id)
        if prior.app != record.app or prior.external_user_id != record.external_user_id:
            # Keys are scoped so this cannot happen; should a scope ever be wrong, another
            # app's or user's try-on is still never handed out as a replay.
            raise IdempotencyConflict(existing_id)
        return prior, False

    async def remembers(self, app: str, idempotency_key: str) -> bool:
        """Whether an Idempotency-Key (as `accept` was given it) still names a try-on."""
        return bool(await self._redis.exists(self._keys.idempotency(app, idempotency_key)))

    async def get(self, tryon_id: str) -> TryOnRecord | None:
        raw: bytes | None
        if self._pipeline is not None:
            raw = await self._pipeline.execute("HGET", self._keys.tryon(tryon_id), "doc")
        else:
            raw = await self._redis.hget(self._keys.tryon(tryon_id), "doc")  # type: ignore[misc]
        return None if raw is None else self._decoder.decode(raw)

    async def _get_with_rev(self, tryon_id: str) -> tuple[TryOnRecord, bytes]:
        rev, raw = await self._redis.hmget(self._keys.tryon(tryon_id), ["rev", "doc"])  # type: ignore[misc]
        if rev is None or raw is None:
            raise TryOnNotFound(tryon_id)
        return self._decoder.decode(raw), rev

    async def update(self, tryon_id: str, mutate: Mutation) -> TryOnRecord:
        """Apply `mutate` to the current record with compare-and-set; retried on a race.

        `mutate` returns the new record, or None to leave it unchanged (it then returns the
        current one). It may run several times, so it must be a pure function of its input.
        """
        while True:
            current, rev = await self._get_with_rev(tryon_id)
            before = current.status  # `mutate` may change `current` in place
            changed = mutate(current)
            if changed is None:
                return current
            changed.updated_at = time.time()
            batch = changed.batch_id or "-"
            event = b""
            webhook_type = ""
            webhook_body = b""
            counted = NOTHING
            if changed.status != before:
                if self._usage is not None:
                    counted = self._usage.transition(before, changed)
                view = await self._view(changed)
                event = self._encoder.encode(view)
                # A batch's try-on sends its own events to webhooks only if the batch asked.
                if changed.tryon_webhooks:
                    webhook_type = EVENT_FOR_STATUS.get(changed.status, "")
                if webhook_type:
                    webhook_body = event_body(webhook_type, view)
            result = await self._update(
                keys=[
                    self._keys.tryon(tryon_id),
                    self._keys.active_tryons,
                    self._keys.tryon_events(tryon_id),
                    self._keys.outbox,
                    self._keys.webhook_endpoints(changed.app),
                    self._keys.metrics,
                    self._keys.ops_failed_tryons,
                    self._keys.batch(batch),
                    self._keys.batch_finished(batch),
                    self._keys.batch_events(batch),
                    *counted.keys,
                ],
                args=[
                    rev,
                    changed.status,
                    self._encoder.encode(changed),
                    "1" if changed.status in TERMINAL else "0",
                    tryon_id,
                    event,
                    webhook_type,
                    webhook_body,
                    changed.app,
                    changed.callback_url or "",
                    event_id(tryon_id, webhook_type) if webhook_type else "",
                    encode_increments(transition_metrics(before, changed)) if event else "",
                    changed.updated_at,
                    changed.trace_id or "",
                    changed.batch_id or "",
                    iso(changed.updated_at) if changed.batch_id else "",
                    event_id(batch, "batch.completed") if changed.batch_id else "",
                    *counted.args,
                ],
            )
            if result == -1:
                raise TryOnNotFound(tryon_id)
            if result > 0:
                if changed.quota_counters and before not in TERMINAL and changed.spent_nothing:
                    await self._quotas.give_back(changed.id, changed.quota_counters)
                return changed

    async def cancel(self, tryon_id: str) -> TryOnRecord:
        """Cancel the try-on if it has not been sent upstream (nothing is spent); the record
        as it is after: `canceled`, or the state that made it not cancelable."""

        def to_canceled(record: TryOnRecord) -> TryOnRecord | None:
            if not record.cancelable:
                return None
            record.status = "canceled"
            record.completed_at = time.time()
            return record

        return await self.update(tryon_id, to_canceled)

    async def enqueue(self, tryon_id: str, *, defer: float = 0.0) -> bool:
        """(Re-)enqueue the try-on's job unless one is queued or running; True if enqueued."""
        return await self.queue.enqueue(
            jobs.RUN_TRYON, tryon_id, job_id=jobs.tryon_job_id(tryon_id), defer=defer
        )

    async def overdue(self, now: float, limit: int = 100) -> list[str]:
        """Non-terminal try-ons whose deadline has passed."""
        ids = await self._redis.zrangebyscore(self._keys.active_tryons, 0, now, 0, limit)
        return [i.decode() for i in ids]

    async def active(self, limit: int = 1000) -> list[str]:
        ids = await self._redis.zrange(self._keys.active_tryons, 0, limit - 1)
        return [i.decode() for i in ids]
