"""The delivery store against real Redis: what an erase removes, and what it keeps from coming
back (an event still in the outbox, an attempt in flight at the erase)."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from service.keys import Keys
from service.webhooks.deliveries import Attempt, Delivery, DeliveryStore

KEYS = Keys("tryon:")


def delivery(tryon_id: str, n: int = 0) -> Delivery:
    return Delivery(
        id=f"msg_{tryon_id}_{n}",
        event_id=f"evt_{tryon_id}_{n}",
        event_type="tryon.completed",
        app="shop",
        target="we_1",
        url="https://example.com/hook",
        tryon_id=tryon_id,
        body='{"data": {"externalUserId": "u1"}}',
        created_at=time.time(),
        next_attempt_at=time.time(),
    )


async def test_an_erase_removes_outbox_entries_and_refuses_their_late_delivery(
    redis: Redis,
) -> None:
    store = DeliveryStore(redis, KEYS)
    await redis.hset(KEYS.tryon("to_1"), "rev", 1)
    await redis.xadd(KEYS.outbox, {"id": "evt_to_1", "tryon": "to_1", "body": "u1"})
    await redis.xadd(KEYS.outbox, {"id": "evt_to_2", "tryon": "to_2", "body": "u2"})
    await redis.delete(KEYS.tryon("to_1"))  # the erase deletes the try-on first

    await store.erase_tryons(["to_1"])
    left = [fields[b"tryon"] for _, fields in await redis.xrange(KEYS.outbox)]
    assert left == [b"to_2"]
    # A dispatcher that had read the entry before the erase creates nothing.
    assert await store.create(delivery("to_1")) is False
    assert await redis.exists(KEYS.delivery("msg_to_1_0")) == 0


async def test_an_attempt_in_flight_at_the_erase_writes_nothing_back(redis: Redis) -> None:
    store = DeliveryStore(redis, KEYS)
    await redis.hset(KEYS.tryon("to_1"), "rev", 1)
    d = delivery("to_1")
    assert await store.create(d)
    assert await store.admit(d, limit=10, lease=30) == 1  # the attempt starts

    await redis.delete(KEYS.tryon("to_1"))
    assert await store.erase_tryons(["to_1"]) == 1
    d.status = "failed"
    attempt = Attempt(at=time.time(), duration_ms=5.0, status=500, response="u1")
    await store.record(d, attempt)  # the attempt ends after the erase
    d.status = "pending"
    assert await store.save(d) is False  # and a resend finds nothing

    assert await redis.exists(KEYS.delivery(d.id), KEYS.delivery_attempts(d.id)) == 0
    assert await redis.zscore(KEYS.ops_failed_deliveries, d.id) is None
    assert await redis.zscore(KEYS.deliveries_due, d.id) is None
    assert await redis.zcard(KEYS.delivery_slots(d.target)) == 0


async def test_a_targets_index_forgets_deliveries_past_their_retention(redis: Redis) -> None:
    store = DeliveryStore(redis, KEYS, retention=60.0)
    await redis.hset(KEYS.tryon("to_1"), "rev", 1)
    old = delivery("to_1", 0)
    old.created_at -= 120
    assert await store.create(old)
    assert await store.create(delivery("to_1", 1))
    ids = await redis.zrange(KEYS.deliveries_by_target("we_1"), 0, -1)
    assert ids == [b"msg_to_1_1"]
