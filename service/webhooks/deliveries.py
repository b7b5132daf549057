"""Deliveries: one per (event, target), recorded before the first attempt is made.

A target is a registered endpoint (`we_...`) or an app's per-request callback URLs
(`cb:<app>`). The delivery id is derived from the event id and the target, and is the
`webhook-id` the receiver sees on every attempt, retry, resend and recovery.

A delivery holds the event body (the end user's id, metadata, the result URL), so it does not
live forever: every write gives the delivery, its attempts and its try-on's index `retention`
(7 days) more. The longest wait between two attempts is under a day (20 h + 10 % jitter, or a
Retry-After of at most 24 h), so a delivery still being retried never expires; a settled one
can be resent or recovered for 7 days after its last attempt. A GDPR erase removes a user's
deliveries at once (`erase_tryons`), and a delivery erased while an attempt was in flight is
not written back by that attempt's outcome.
"""

from __future__ import annotations

import hashlib
import time
from typing import Literal

import msgspec
from redis.asyncio import Redis

from service.keys import Keys
from service.metrics import field

DeliveryStatus = Literal["pending", "succeeded", "failed"]

DELIVERY_RETENTION = 7 * 86_400.0
_OUTBOX_PAGE = 500

# Create once: a delivery written twice (a dispatcher crash before its ack) keeps the first.
# A try-on's delivery is not created once the try-on is gone (erased while its event was on
# its way from the outbox): nothing of an erased user is written back.
_CREATE = """
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[6]) == 0 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[4]) == false then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
-- A target's index forgets deliveries past their retention (their records are gone).
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3] - ARGV[4] / 1000)
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
return 1
"""

# Rewrite an existing delivery (a resend); an erased one stays erased. 1 if written.
_SAVE = """
if redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) == false then return 0 end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
else
  redis.call('ZREM', KEYS[2], ARGV[4])
end
return 1
"""

# One step before an attempt: is it this delivery's turn (events of one try-on go in order),
# is no other attempt of it in flight, and is there a free slot at its target (a bounded number
# in flight; leases expire so a killed worker frees its slot)? The verdicts are below.
_ADMIT = """
local head = redis.call('LINDEX', KEYS[2], 0)
if head and head ~= ARGV[3] then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 2 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1
"""

# One step after an attempt: the delivery's new state, the attempt log, the slot released, the
# due index, and (when settled) its place in the order queue; returns the id that goes next.
_RECORD = """
if ARGV[6] ~= '' then redis.call('HINCRBYFLOAT', KEYS[7], ARGV[6], 1) end
redis.call('ZREM', KEYS[3], ARGV[3])
-- Erased while the attempt was in flight: its outcome is not written back.
if redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[8]) == false then
  redis.call('ZREM', KEYS[4], ARGV[3])
  return false
end
if ARGV[2] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
if ARGV[4] == 'pending' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3])
  return false
end
redis.call('ZREM', KEYS[4], ARGV[3])
-- The ops API's list of dead deliveries (newest 10000); a resent one leaves it when read.
if ARGV[4] == 'failed' then
  redis.call('ZADD', KEYS[8], ARGV[7], ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -10001)
end
if ARGV[4] == 'succeeded' then redis.call('DEL', KEYS[6]) end
redis.call('LREM', KEYS[5], 1, ARGV[3])
return redis.call('LINDEX', KEYS[5], 0)
"""


# What `DeliveryStore.admit` answers.
ADMITTED = 1
NO_SLOT = 0
NOT_ITS_TURN = -1
# Another attempt of this delivery holds a slot: it records its outcome and schedules what
# follows, so there is nothing to do (if its worker died, the lease expires and the sweep
# finds the delivery still due).
IN_FLIGHT = 2


class Attempt(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    at: float
    duration_ms: float
    status: int | None = None
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None
    next_attempt_at: float | None = None


class Delivery(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    id: str
    event_id: str
    event_type: str
    app: str
    target: str
    url: str
    tryon_id: str | None = None
    body: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    created_at: float
    next_attempt_at: float | None = None
    last_error: str | None = None
    trace_id: str | None = None

    @property
    def to_endpoint(self) -> bool:
        """To a registered endpoint (`we_...`), not to an app's per-request callback URLs."""
        return self.target.startswith("we_")


# The target of budget alerts' copies to the ops endpoint (ALERTS_OPS_URL; service/usage/).
OPS_TARGET = "ops:alerts"


def callback_target(app: str) -> str:
    """The target of every per-request callback URL of an app (they share its secret)."""
    return f"cb:{app}"


def _outcome(delivery: Delivery) -> str:
    return "retrying" if delivery.status == "pending" else delivery.status


def delivery_id(event_id: str, target: str) -> str:
    return "msg_" + hashlib.sha256(f"{event_id}|{target}".encode()).hexdigest()[:26]


class DeliveryStore:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(Delivery)
    _attempt_decoder = msgspec.json.Decoder(Attempt)

    def __init__(self, redis: Redis, keys: Keys, *, retention: float = DELIVERY_RETENTION) -> None:
        self._redis = redis
        self._keys = keys
        self._retention_ms = int(retention * 1000)
        self._create = redis.register_script(_CREATE)
        self._save = redis.register_script(_SAVE)
        self._admit = redis.register_script(_ADMIT)
        self._record = redis.register_script(_RECORD)

    async def create(self, delivery: Delivery) -> bool:
        k = self._keys
        order = k.delivery_order(delivery.target, delivery.tryon_id or delivery.id)
        created = await self._create(
            keys=[
                k.delivery(delivery.id),
                order,
                k.deliveries_by_target(delivery.target),
                k.deliveries_due,
                k.deliveries_by_tryon(delivery.tryon_id or "-"),
                k.tryon(delivery.tryon_id or "-"),
            ],
            args=[
                self._encoder.encode(delivery),
                delivery.id,
                delivery.created_at,
                self._retention_ms,
                "1" if delivery.tryon_id else "0",
            ],
        )
        return bool(created)

    async def get(self, delivery_id: str) -> Delivery | None:
        raw: bytes | None = await self._redis.get(self._keys.delivery(delivery_id))
        return None if raw is None else self._decoder.decode(raw)

    async def save(self, delivery: Delivery) -> bool:
        """Rewrite a delivery that exists; False (nothing written) once it expired or was
        erased."""
        k = self._keys
        due_at = delivery.next_attempt_at if delivery.status == "pending" else None
        saved = await self._save(
            keys=[k.delivery(delivery.id), k.deliveries_due],
            args=[
                self._encoder.encode(delivery),
                self._retention_ms,
                "" if due_at is None else due_at,
                delivery.id,
            ],
        )
        return bool(saved)

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        raw: list[bytes] = await self._redis.lrange(  # type: ignore[misc]
            self._keys.delivery_attempts(delivery_id), 0, -1
        )
        return [self._attempt_decoder.decode(r) for r in raw]

    # --- one step before and one after each attempt ----------------------------------------

    def _order(self, delivery: Delivery) -> str:
        return self._keys.delivery_order(delivery.target, delivery.tryon_id or delivery.id)

    async def admit(self, delivery: Delivery, limit: int, lease: float) -> int:
        """`ADMITTED`, `NO_SLOT` at the target, `NOT_ITS_TURN` (an earlier event of the
        try-on goes first) or `IN_FLIGHT` (an attempt of this delivery is being made)."""
        now = time.time()
        verdict = await self._admit(
            keys=[self._keys.delivery_slots(delivery.target), self._order(delivery)],
            args=[now, now + lease, delivery.id, limit],
        )
        return int(verdict)

    async def record(self, delivery: Delivery, attempt: Attempt | None) -> str | None:
        """Write the outcome of an attempt (or of a settlement without one) in one step.

        Releases the target slot; a settled delivery leaves its order queue, and the id of the
        delivery that goes next for that try-on is returned."""
        k = self._keys
        following = await self._record(
            keys=[
                k.delivery(delivery.id),
                k.delivery_attempts(delivery.id),
                k.delivery_slots(delivery.target),
                k.deliveries_due,
                self._order(delivery),
                k.target_failing_since(delivery.target),
                k.metrics,
                k.ops_failed_deliveries,
            ],
            args=[
                self._encoder.encode(delivery),
                self._encoder.encode(attempt) if attempt is not None else "",
                delivery.id,
                delivery.status,
                delivery.next_attempt_at or 0,
                "" if attempt is None else field("webhook_deliveries", outcome=_outcome(delivery)),
                time.time(),
                self._retention_ms,
            ],
        )
        return None if following is None else following.decode()

    async def requeue_in_order(self, delivery: Delivery) -> None:
        """A resent or recovered delivery waits behind whatever is queued for that try-on."""
        order = self._order(delivery)
        await self._redis.lrem(order, 1, delivery.id)  # type: ignore[misc]
        await self._redis.rpush(order, delivery.id)  # type: ignore[misc]

    async def release_slot(self, delivery: Delivery) -> None:
        await self._redis.zrem(self._keys.delivery_slots(delivery.target), delivery.id)

    # --- listings --------------------------------------------------------------------------

    async def by_target(
        self, target: str, *, since: float = 0.0, limit: int = 100
    ) -> list[Delivery]:
        ids: list[bytes] = await self._redis.zrevrangebyscore(
            self._keys.deliveries_by_target(target), "+inf", since, 0, limit
        )
        return await self._many([i.decode() for i in ids])

    async def by_tryon(self, tryon_id: str) -> list[Delivery]:
        ids: list[bytes] = await self._redis.zrange(self._keys.deliveries_by_tryon(tryon_id), 0, -1)
        return await self._many([i.decode() for i in ids])

    async def due(self, now: float, limit: int = 500) -> list[str]:
        ids: list[bytes] = await self._redis.zrangebyscore(
            self._keys.deliveries_due, "-inf", now, 0, limit
        )
        return [i.decode() for i in ids]

    async def _many(self, ids: list[str]) -> list[Delivery]:
        if not ids:
            return []
        raws: list[bytes | None] = await self._redis.mget([self._keys.delivery(i) for i in ids])
        return [self._decoder.decode(r) for r in raws if r is not None]

    # --- GDPR erase ---------------------------------------------------------------------------

    async def erase_tryons(self, tryon_ids: list[str]) -> int:
        """Forget every delivery of these try-ons: records, attempts, indexes, and events still
        in the outbox. Their try-on records must be gone first (`create` then refuses an event
        already read from the outbox). Returns how many deliveries were erased."""
        k = self._keys
        gone = set(tryon_ids)
        await self._forget_outbox(gone)
        erased = 0
        for tryon_id in tryon_ids:
            raw: list[bytes] = await self._redis.zrange(k.deliveries_by_tryon(tryon_id), 0, -1)
            ids = [i.decode() for i in raw]
            async with self._redis.pipeline(transaction=True) as pipe:
                for d in await self._many(ids):
                    pipe.delete(self._order(d))
                    pipe.zrem(k.deliveries_by_target(d.target), d.id)
                    pipe.zrem(k.delivery_slots(d.target), d.id)
                for i in ids:
                    pipe.delete(k.delivery(i), k.delivery_attempts(i))
                    pipe.zrem(k.deliveries_due, i)
                    pipe.zrem(k.ops_failed_deliveries, i)
                pipe.delete(k.deliveries_by_tryon(tryon_id))
                await pipe.execute()
            erased += len(ids)
        return erased

    async def _forget_outbox(self, tryon_ids: set[str]) -> None:
        """Delete outbox entries of these try-ons. The dispatcher deletes each entry once
        handled, so the stream holds only events in transit: a short read."""
        stream = self._keys.outbox
        start = "-"
        while True:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await self._redis.xrange(
                stream, min=start, count=_OUTBOX_PAGE
            )
            doomed = [i for i, f in entries if f.get(b"tryon", b"").decode() in tryon_ids]
            if doomed:
                await self._redis.xdel(stream, *doomed)
            if len(entries) < _OUTBOX_PAGE:
                return
            start = "(" + entries[-1][0].decode()

    # --- a target's run of failures ---------------------------------------------------------

    async def failing_since(self, target: str, now: float) -> float:
        """Mark a failure; returns when the current run of failures began."""
        key = self._keys.target_failing_since(target)
        await self._redis.set(key, now, nx=True)
        raw: bytes | None = await self._redis.get(key)
        return float(raw) if raw is not None else now
