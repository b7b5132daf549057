"""Deliveries: one per (event, target), recorded before the first attempt is made.

A target is a registered endpoint (`we_...`) or an app's per-request callback URLs
(`cb:<app>`). The delivery id is derived from the event id and the target, and is the
`webhook-id` the receiver sees on every attempt, retry, resend and recovery.
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

# Create once: a delivery written twice (a dispatcher crash before its ack) keeps the first.
_CREATE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
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
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[6] ~= '' then redis.call('HINCRBYFLOAT', KEYS[7], ARGV[6], 1) end
if ARGV[2] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[2]) end
redis.call('ZREM', KEYS[3], ARGV[3])
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

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._create = redis.register_script(_CREATE)
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
            ],
            args=[self._encoder.encode(delivery), delivery.id, delivery.created_at],
        )
        return bool(created)

    async def get(self, delivery_id: str) -> Delivery | None:
        raw: bytes | None = await self._redis.get(self._keys.delivery(delivery_id))
        return None if raw is None else self._decoder.decode(raw)

    async def save(self, delivery: Delivery) -> None:
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(k.delivery(delivery.id), self._encoder.encode(delivery))
            if delivery.status == "pending" and delivery.next_attempt_at is not None:
                pipe.zadd(k.deliveries_due, {delivery.id: delivery.next_attempt_at})
            else:
                pipe.zrem(k.deliveries_due, delivery.id)
            await pipe.execute()

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

    # --- a target's run of failures ---------------------------------------------------------

    async def failing_since(self, target: str, now: float) -> float:
        """Mark a failure; returns when the current run of failures began."""
        key = self._keys.target_failing_since(target)
        await self._redis.set(key, now, nx=True)
        raw: bytes | None = await self._redis.get(key)
        return float(raw) if raw is not None else now
