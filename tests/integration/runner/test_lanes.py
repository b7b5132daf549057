"""Lanes and batches in process: the gateway app accepting, the worker's runner on real Redis,
the emulator over HTTP (docs/lanes.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from workers.runner import RetryLater

from tests.integration.runner.conftest import APP, DAILY_CAP, Harness


async def _batch(h: Harness, image_id: str, n: int, **extra: Any) -> dict[str, Any]:
    body = {
        "person": {"image": {"source": {"id": image_id}}},
        "products": [{"externalId": "tee"}] * n,
        **extra,
    }
    r = await h.gateway.post("/v1/batches", json=body)
    assert r.status_code == 202, r.text
    batch: dict[str, Any] = r.json()
    return batch


async def _photo_upstream(h: Harness) -> str:
    """A photo already uploaded upstream (by a first try-on run to its end): the try-ons of a
    test then wait only for the budget."""
    warm = await h.tryon()
    await h.drive(warm)
    image_id = (await h.record(warm)).person.image_id
    assert image_id is not None
    return image_id


async def _run_until_done(h: Harness, tryon_id: str) -> None:
    for job_try in range(1, 50):
        try:
            await h.run(tryon_id, job_try)
            return
        except RetryLater as later:
            await asyncio.sleep(min(later.delay, 0.2))


@pytest.mark.parametrize(("harness_env", "lanes"), [({}, True), ({"WORKER_LANES": "false"}, False)])
async def test_an_interactive_tryon_queued_behind_a_batch_is_sent_first(
    harness: Harness, lanes: bool
) -> None:
    """Five batch try-ons and then one interactive one wait for budget cells (the budget is
    paused); when cells come back, the interactive one's create goes first: at most one batch
    create is sent beside it (the bucket's burst frees two cells at once, and both creates are
    sent in the same instant). With lanes off (first come, first served) it goes after all
    five."""
    h = harness
    image_id = await _photo_upstream(h)
    batch = await _batch(h, image_id, 5)
    interactive = await h.accept(image_id)
    await h.res.budget.pause(0.5)
    batch_ids = [t["id"] for t in batch["tryons"]]
    runs = [asyncio.create_task(_run_until_done(h, i)) for i in batch_ids]
    await asyncio.sleep(0.1)  # the batch's creates are waiting before the interactive one's
    runs.append(asyncio.create_task(_run_until_done(h, interactive)))
    await asyncio.gather(*runs)
    sent = {i: (await h.record(i)).create_started_at or 0.0 for i in [*batch_ids, interactive]}
    assert all(sent.values()), sent
    before = sum(1 for i in batch_ids if sent[i] < sent[interactive])
    assert before <= 1 if lanes else before == 5, sent
    assert (await h.record(interactive)).lane == "interactive"
    assert {(await h.record(i)).lane for i in batch_ids} == {"batch"}


async def test_a_batch_is_counted_all_or_nothing_against_the_daily_cap(harness: Harness) -> None:
    h = harness
    await h.put_product()
    image_id = await h.upload_photo()
    r = await h.gateway.post(
        "/v1/batches",
        json={
            "person": {"image": {"source": {"id": image_id}}},
            "products": [{"externalId": "tee"}] * (DAILY_CAP + 1),
        },
    )
    assert r.status_code == 402, r.text
    assert await h.quota_held() == 0
    assert await h.res.redis.keys("tryon:t:*") == []
    await _batch(h, image_id, DAILY_CAP)
    assert await h.quota_held() == DAILY_CAP


async def test_a_bad_item_refuses_the_whole_batch(harness: Harness, redis: Redis) -> None:
    h = harness
    await h.put_product()
    image_id = await h.upload_photo()
    r = await h.gateway.post(
        "/v1/batches",
        json={
            "person": {"image": {"source": {"id": image_id}}},
            "products": [{"externalId": "tee"}, {"externalId": "no-such-product"}],
        },
    )
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "PRODUCT_NOT_FOUND"
    assert await redis.keys("tryon:batch:*") == []
    assert await redis.keys("tryon:t:*") == []
    assert await h.quota_held() == 0


async def test_batch_idempotency(harness: Harness, redis: Redis) -> None:
    h = harness
    await h.put_product()
    image_id = await h.upload_photo()
    body = {
        "person": {"image": {"source": {"id": image_id}}},
        "products": [{"externalId": "tee"}] * 3,
    }
    headers = {"Idempotency-Key": "lookbook-1"}
    first = await h.gateway.post("/v1/batches", json=body, headers=headers)
    again = await h.gateway.post("/v1/batches", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert [t["id"] for t in again.json()["tryons"]] == [t["id"] for t in first.json()["tryons"]]
    assert len(await redis.keys("tryon:t:*")) == 3
    assert await h.quota_held() == 3
    other = await h.gateway.post(
        "/v1/batches", json={**body, "products": [{"externalId": "tee"}]}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_a_batch_accept_cut_short_is_finished_by_its_replay(
    harness: Harness, redis: Redis
) -> None:
    """A gateway that died after accepting some of a batch's try-ons: the same request again
    accepts the rest, counting none twice."""
    h = harness
    await h.put_product()
    image_id = await h.upload_photo()
    body = {
        "person": {"image": {"source": {"id": image_id}}},
        "products": [{"externalId": "tee"}] * 4,
    }
    headers = {"Idempotency-Key": "cut-short"}
    first = (await h.gateway.post("/v1/batches", json=body, headers=headers)).json()
    # Make it look cut short after two try-ons: status back to accepting, the list emptied,
    # two try-ons and their per-item keys gone.
    for t in first["tryons"][2:]:
        record = await h.record(t["id"])
        await redis.delete(f"tryon:t:{t['id']}")
        assert record.idempotency_key is not None
        await redis.delete(h.res.keys.idempotency(APP, record.idempotency_key))
    await redis.hset(f"tryon:batch:{first['id']}", "status", "accepting")
    await redis.delete(f"tryon:batch:{first['id']}:items")
    again = (await h.gateway.post("/v1/batches", json=body, headers=headers)).json()
    assert again["id"] == first["id"]
    assert again["status"] == "running"
    assert [t["id"] for t in again["tryons"]][:2] == [t["id"] for t in first["tryons"]][:2]
    assert len(again["tryons"]) == 4
    assert await h.quota_held() == 4


async def test_progress_counts_and_completion(harness: Harness, redis: Redis) -> None:
    h = harness
    image_id = await _photo_upstream(h)
    batch = await _batch(h, image_id, 3)
    assert batch["status"] == "running"
    assert batch["counts"] == {"pending": 3, "completed": 0, "failed": 0, "canceled": 0}
    ids = [t["id"] for t in batch["tryons"]]
    r = await h.gateway.delete(f"/v1/try-ons/{ids[2]}")
    assert r.status_code == 200
    for i in ids[:2]:
        await h.drive(i)
    view = (await h.gateway.get(f"/v1/batches/{batch['id']}", params={"limit": 2})).json()
    assert view["status"] == "completed"
    assert view["counts"] == {"pending": 0, "completed": 2, "failed": 0, "canceled": 1}
    assert [t["status"] for t in view["tryons"]] == ["completed", "completed"]
    assert view["nextOffset"] == 2


async def _outbox_types(redis: Redis) -> list[str]:
    entries = await redis.xrange("tryon:outbox")
    return [fields[b"type"].decode() for _, fields in entries]


@pytest.mark.parametrize("harness_env", [{"WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1"}])
@pytest.mark.parametrize("per_tryon", [False, True])
async def test_a_batch_sends_its_tryons_events_only_when_asked(
    harness: Harness, redis: Redis, per_tryon: bool
) -> None:
    h = harness
    image_id = await _photo_upstream(h)
    await redis.delete("tryon:outbox")
    batch = await _batch(
        h, image_id, 2, callbackUrl="http://127.0.0.1:9/hooks", tryonWebhooks=per_tryon
    )
    for t in batch["tryons"]:
        await h.drive(t["id"])
    types = await _outbox_types(redis)
    assert types.count("batch.completed") == 1
    assert types.count("tryon.completed") == (2 if per_tryon else 0)
    # A try-on finishing again (an operator's retry) neither counts nor completes it again.
    again = batch["tryons"][0]["id"]
    await h.res.store.update(again, lambda r: msgspec.structs.replace(r, status="queued"))
    await h.res.store.update(again, lambda r: msgspec.structs.replace(r, status="failed"))
    assert (await _outbox_types(redis)).count("batch.completed") == 1
    view = (await h.gateway.get(f"/v1/batches/{batch['id']}")).json()
    assert (view["counts"]["completed"], view["counts"]["failed"]) == (2, 0)


@pytest.mark.parametrize("harness_env", [{"WORKER_BATCH_SLOTS": "1"}])
async def test_a_worker_holds_at_most_its_batch_slots(harness: Harness) -> None:
    """A second batch try-on finding the worker's batch slots taken is handed back to arq;
    an interactive one is not."""
    h = harness
    image_id = await _photo_upstream(h)
    batch = await _batch(h, image_id, 2)
    interactive = await h.accept(image_id)
    first, second = (t["id"] for t in batch["tryons"])
    await h.res.budget.pause(1.0)  # the first holds its slot while it waits for a cell
    holding = asyncio.create_task(h.run(first))
    await h.wait_for(first, lambda r: r.status == "submitting")
    with pytest.raises(RetryLater, match="batch slots"):
        await h.run(second)
    assert (await h.run(interactive)) == "completed"
    await holding
    assert (await h.run(second)) == "completed"


async def test_an_item_refused_after_the_check_leaves_the_batch_consistent(
    harness: Harness, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last item's product is deleted between the batch's check and its accept: the items
    accepted are listed and run, the refused one counts as failed, its unit of the daily cap
    comes back, and the batch completes."""
    from service.batches.store import BatchStore
    from service.products import Catalog

    h = harness
    image_id = await _photo_upstream(h)
    await h.put_product("gone", title="Gone tee")
    create = BatchStore.create

    async def create_then_delete(self: BatchStore, batch: Any) -> None:
        await create(self, batch)
        # The gateway's own connection: it runs on its own event loop.
        assert await Catalog(self._redis, h.res.keys).delete(APP, "gone")

    monkeypatch.setattr(BatchStore, "create", create_then_delete)
    held = await h.quota_held()
    body = {
        "person": {"image": {"source": {"id": image_id}}},
        "products": [{"externalId": "tee"}, {"externalId": "tee"}, {"externalId": "gone"}],
    }
    r = await h.gateway.post("/v1/batches", json=body)
    assert r.status_code == 202, r.text
    batch = r.json()
    assert batch["status"] == "running"
    assert batch["counts"] == {"pending": 2, "completed": 0, "failed": 1, "canceled": 0}
    ids = [t["id"] for t in batch["tryons"]]
    assert len(ids) == 2
    assert await h.quota_held() == held + 2
    for i in ids:
        await h.drive(i)
    view = (await h.gateway.get(f"/v1/batches/{batch['id']}")).json()
    assert view["status"] == "completed"
    assert view["counts"] == {"pending": 0, "completed": 2, "failed": 1, "canceled": 0}


async def test_erasing_a_user_ends_their_queued_batch_tryons(harness: Harness) -> None:
    """The user's try-on still queued in a batch is ended by the erase: the batch completes
    and its unit of the daily cap comes back."""
    h = harness
    image_id = await _photo_upstream(h)
    held = await h.quota_held()
    body = {
        "items": [
            {"person": {"image": {"source": {"id": image_id}}}, "product": {"externalId": "tee"}}
        ],
        "externalUserId": "ann",
    }
    r = await h.gateway.post("/v1/batches", json=body)
    assert r.status_code == 202, r.text
    batch = r.json()
    assert await h.quota_held() == held + 1
    r = await h.gateway.delete("/v1/customers/ann")
    assert r.status_code == 204, r.text
    view = (await h.gateway.get(f"/v1/batches/{batch['id']}")).json()
    assert view["status"] == "completed"
    assert view["counts"] == {"pending": 0, "completed": 0, "failed": 0, "canceled": 1}
    assert await h.quota_held() == held
