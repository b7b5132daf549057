"""The exact result cache and its single flight, one behaviour per test: the gateway app in
process accepting, the worker's `TryOnRunner` on the test Redis database, the emulator over
HTTP (tests/integration/runner/conftest.py's Harness).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import msgspec
import pytest
from PIL import Image
from service.access.models import Policy
from service.results.reuse import Lead
from service.tryons.store import TryOnNotFound

from tests.integration.runner.conftest import APP, Harness, error_code

CALLBACK = "http://127.0.0.1:9/hook"


@pytest.fixture
def harness_env() -> dict[str, str]:
    # The cache on (the harness has it off); callback URLs on loopback; an app's policy change
    # seen at once.
    return {
        "RESULTS_REUSE_TTL": "86400",
        "WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
        "GATEWAY_KEY_CACHE_SECONDS": "0",
    }


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness


async def upload(h: Harness, color: tuple[int, int, int] = (200, 150, 120), **fields: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 80), color).save(buf, "JPEG")
    r = await h.gateway.post(
        "/v1/images", files={"file": ("p.jpg", buf.getvalue(), "image/jpeg")}, data=fields
    )
    assert r.status_code == 201, r.text
    image_id: str = r.json()["id"]
    return image_id


async def post(h: Harness, image_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "products": [{"externalId": "tee"}],
        "person": {"image": {"source": {"id": image_id}}},
        **extra,
    }
    r = await h.gateway.post("/v1/try-ons", json=body)
    assert r.status_code == 202, r.text
    view: dict[str, Any] = r.json()
    return view


async def completed_first(h: Harness) -> tuple[str, str]:
    """A catalog product, a photo, and one try-on of them generated: (image id, try-on id)."""
    await h.put_product()
    image_id = await upload(h)
    first = await post(h, image_id)
    record = await h.drive(first["id"])
    assert record.status == "completed", record
    return image_id, first["id"]


async def outbox(h: Harness, tryon_id: str) -> list[tuple[str, dict[str, Any]]]:
    entries = await h.res.redis.xrange(h.res.keys.outbox)
    return [
        (f[b"type"].decode(), msgspec.json.decode(f[b"body"]))
        for _, f in entries
        if f[b"tryon"].decode() == tryon_id
    ]


async def budget_grants(h: Harness) -> float:
    raw = await h.res.redis.hget(h.res.keys.metrics, "upstream_budget_grants")  # type: ignore[misc]
    return float(raw or 0)


async def test_an_identical_try_on_completes_at_once_from_the_stored_result(h: Harness) -> None:
    image_id, first = await completed_first(h)
    source = await h.record(first)
    cost, requests = h.cost(), h.counters()["requests"]
    held, grants = await h.quota_held(), await budget_grants(h)

    view = await post(h, image_id, callbackUrl=CALLBACK)

    # Completed in the 202 itself, naming the try-on it reused, with the gateway's link.
    assert view["status"] == "completed"
    assert view["reusedFrom"] == first
    assert "/v1/results/" in view["result"]["imageUrl"]
    # No upstream call, no credit, no budget cell; its quota unit given back.
    assert h.cost() == cost
    assert h.counters()["requests"] == requests
    assert await budget_grants(h) == grants
    assert await h.quota_held() == held
    # The same object, by reference, kept at least as long as the new try-on promises.
    record = await h.record(view["id"])
    assert record.stored_result is not None
    assert source.stored_result is not None
    assert record.stored_result.key == source.stored_result.key
    assert record.reused_from == first
    expiry = await h.res.redis.zscore(h.res.keys.results_expiry, record.stored_result.key)
    assert expiry is not None
    assert expiry >= record.stored_result.expires_at - 0.001
    # Its link loads the image.
    link = view["result"]["imageUrl"].split("://", 1)[1].split("/", 1)[1]
    image = await h.gateway.get("/" + link)
    assert image.status_code == 200
    assert len(image.content) == source.stored_result.size
    # The usual event for webhooks, carrying reusedFrom.
    [(kind, body)] = await outbox(h, view["id"])
    assert kind == "tryon.completed"
    assert body["data"]["reusedFrom"] == first
    # Its job, when a worker takes it up, finds it done and spends nothing.
    assert (await h.drive(view["id"])).status == "completed"
    assert h.cost() == cost
    metrics = await h.res.redis.hgetall(h.res.keys.metrics)
    assert float(metrics[b"credits_saved"]) == 1
    assert float(metrics[b"result_cache|result=hit"]) == 1


async def change_product(h: Harness) -> dict[str, Any]:
    await h.put_product(title="Red tee, new photo shoot")
    return {}


async def other_photo(h: Harness) -> dict[str, Any]:
    return {"image": await upload(h, color=(20, 40, 60))}


async def crop_flag(h: Harness) -> dict[str, Any]:
    return {"image": await upload(h, crop="false")}


async def output_options(h: Harness) -> dict[str, Any]:
    return {"extra": {"output": {"watermark": False}}}


async def end_user(h: Harness) -> dict[str, Any]:
    return {"extra": {"externalUserId": "someone-else"}}


@pytest.mark.parametrize(
    "change", [change_product, other_photo, crop_flag, output_options, end_user]
)
async def test_any_change_of_a_key_part_misses(h: Harness, change: Any) -> None:
    image_id, _ = await completed_first(h)
    changed = await change(h)
    creates = h.creates()

    view = await post(h, changed.get("image", image_id), **changed.get("extra", {}))

    assert view["status"] == "queued"
    assert "reusedFrom" not in view
    record = await h.drive(view["id"])
    assert record.status == "completed"
    assert record.reused_from is None
    assert h.creates() == creates + 1


async def test_a_failure_is_never_reused(h: Harness) -> None:
    await h.put_product()
    image_id = await upload(h)
    h.fault(status=422, code="INVALID_REQUEST", count=1)
    failed = await h.drive((await post(h, image_id))["id"])
    assert error_code(failed) == "INVALID_REQUEST"

    view = await post(h, image_id)

    assert view["status"] == "queued"
    record = await h.drive(view["id"])
    assert record.status == "completed"
    assert record.reused_from is None


async def test_the_app_policy_turns_the_cache_off(h: Harness) -> None:
    image_id, _ = await completed_first(h)
    await h.res.apps.set_policy(APP, Policy(daily_credit_cap=50, result_cache=False))
    creates = h.creates()

    view = await post(h, image_id)

    assert view["status"] == "queued"
    record = await h.drive(view["id"])
    assert record.reuse_key is None
    assert record.reused_from is None
    assert h.creates() == creates + 1


async def test_reuse_false_generates_afresh(h: Harness) -> None:
    image_id, _ = await completed_first(h)
    creates = h.creates()

    view = await post(h, image_id, reuse=False)

    assert view["status"] == "queued"
    record = await h.drive(view["id"])
    assert record.reused_from is None
    assert h.creates() == creates + 1


async def test_a_gdpr_erase_purges_the_users_entries_only(h: Harness) -> None:
    await h.put_product()
    firsts = {}
    for user in ("ann", "bob"):
        image_id = await upload(h, externalUserId=user)
        firsts[user] = (image_id, await post(h, image_id, externalUserId=user))
        assert (await h.drive(firsts[user][1]["id"])).status == "completed"
    ann = await h.record(firsts["ann"][1]["id"])
    assert ann.reuse_key is not None

    r = await h.gateway.delete("/v1/customers/ann")
    assert r.status_code in (200, 202, 204), r.text

    assert not await h.res.redis.exists(h.res.keys.reuse_entry(ann.reuse_key))
    # Ann's photo went with her; her next try-on, with the same photo again, is generated.
    again = await post(h, await upload(h, externalUserId="ann"), externalUserId="ann")
    assert again["status"] == "queued"
    # Bob's entry stays.
    bob_image, bob_first = firsts["bob"]
    bob = await post(h, bob_image, externalUserId="bob")
    assert bob["status"] == "completed"
    assert bob["reusedFrom"] == bob_first["id"]


async def test_identical_try_ons_in_flight_wait_for_one_leader_and_survive_its_failure(
    h: Harness,
) -> None:
    await h.put_product()
    image_id = await upload(h)
    ids = [(await post(h, image_id))["id"] for _ in range(3)]
    leader, second, third = ids
    # The leader's create is answered late, with a refusal (nothing generated, no credit).
    h.fault(status=422, code="INVALID_REQUEST", count=1, latency=1.0)
    leading = asyncio.create_task(h.drive(leader))
    await h.wait_requests("create_try_on_sync")

    # The others wait for it instead of generating.
    assert await h.run(second) == "following"
    assert await h.run(third) == "following"
    assert (await h.record(second)).status == "queued"

    assert error_code(await leading) == "INVALID_REQUEST"
    # Its failure is not handed to them: both are enqueued again (arq runs each); one
    # becomes the next leader, the other waits on it and completes from its result.
    h.fault(count=1, latency=1.0)
    creates = h.creates()
    leading = asyncio.create_task(h.drive(second))
    await h.wait_requests("create_try_on_sync", 2)
    assert await h.run(third) == "following"
    done = await leading
    assert done.status == "completed"
    assert done.reused_from is None
    follower = await h.record(third)
    assert follower.status == "completed"
    assert follower.reused_from == second
    assert follower.stored_result == done.stored_result
    assert h.creates() == creates + 1
    assert h.counters()["generationsCreated"] == 1
    # Every unit of the app's daily cap is back but the one generation's.
    assert await h.quota_held() == 1


async def test_an_erase_during_the_result_copy_leaves_no_object(h: Harness) -> None:
    """The user is erased after the worker stored the result but before it completed the
    try-on: the erase found no object yet, so the worker deletes the one it stored."""
    await h.put_product()
    tryon_id = (await post(h, await upload(h, externalUserId="ann"), externalUserId="ann"))["id"]
    results = h.res.results
    stored_keys: list[str] = []
    put = results.put

    async def put_then_erase(key: str, data: bytes, **kw: Any) -> Any:
        stored = await put(key, data, **kw)
        stored_keys.append(stored.key)
        r = await h.gateway.delete("/v1/customers/ann")
        assert r.status_code in (200, 202, 204), r.text
        return stored

    results.put = put_then_erase  # type: ignore[method-assign]
    try:
        with pytest.raises(TryOnNotFound):
            await h.run(tryon_id)
    finally:
        results.put = put  # type: ignore[method-assign]

    assert await h.res.store.get(tryon_id) is None
    [key] = stored_keys
    assert await results.read(key) is None
    assert await h.res.redis.zscore(h.res.keys.results_expiry, key) is None


async def batch_of_one(h: Harness) -> tuple[str, str]:
    """User u's photo and a batch of one try-on of it (the batch lane): (image id, try-on id)."""
    await h.put_product()
    image_id = await upload(h, externalUserId="u")
    r = await h.gateway.post(
        "/v1/batches",
        json={
            "person": {"image": {"source": {"id": image_id}}},
            "products": [{"externalId": "tee"}],
            "externalUserId": "u",
        },
    )
    assert r.status_code == 202, r.text
    [batch_id] = [t["id"] for t in r.json()["tryons"]]
    return image_id, batch_id


async def test_an_interactive_try_on_takes_the_lead_from_an_unsent_batch_leader(
    h: Harness,
) -> None:
    """A batch try-on for user U leads its key but waits, unsent, behind the interactive
    lane; U's browser tries the same product with the same photo: it does not wait on it
    (up to the worker's bound), it generates, and the batch one completes from its result."""
    image_id, batch_id = await batch_of_one(h)
    batch = await h.record(batch_id)
    assert batch.lane == "batch"
    # Its worker took it up and claimed the lead; the budget holds it back (not sent).
    assert isinstance(await h.res.reuse.claim(batch), Lead)

    interactive = (await post(h, image_id, externalUserId="u"))["id"]
    assert (await h.record(interactive)).reuse_key == batch.reuse_key

    done = await h.drive(interactive)
    assert done.status == "completed"
    assert done.reused_from is None
    follower = await h.drive(batch_id)
    assert follower.status == "completed"
    assert follower.reused_from == interactive
    assert h.counters()["generationsCreated"] == 1


async def test_an_interactive_try_on_follows_a_batch_leader_already_sent(h: Harness) -> None:
    image_id, batch_id = await batch_of_one(h)
    h.fault(count=1, latency=1.0)
    leading = asyncio.create_task(h.drive(batch_id))
    await h.wait_requests("create_try_on_sync")

    interactive = (await post(h, image_id, externalUserId="u"))["id"]
    assert await h.run(interactive) == "following"
    assert (await leading).status == "completed"
    follower = await h.record(interactive)
    assert follower.status == "completed"
    assert follower.reused_from == batch_id
