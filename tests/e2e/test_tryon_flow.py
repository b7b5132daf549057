"""A backend's view of the pipeline: real gateway, real worker, emulator, Redis."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import (
    OTHER_SECRET,
    Gateway,
    fetch,
    photo_bytes,
    put_product,
    start_tryon,
    upload_photo,
    wait_terminal,
)


async def test_tryon_completes_with_a_real_result_image(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    created = await start_tryon(api, image_id, metadata={"order": "A-1", "n": 2})
    assert created["status"] == "queued"
    assert created["metadata"] == {"order": "A-1", "n": 2}

    done = await wait_terminal(api, created["id"])
    assert done["status"] == "completed", done
    assert done["productExternalId"] == "tee"
    assert done["metadata"] == {"order": "A-1", "n": 2}
    result = await fetch(done["result"]["imageUrl"])
    assert result.status_code == 200
    assert result.content[:3] == b"\xff\xd8\xff"  # a JPEG
    assert emulator.counters()["generationsCreated"] == 1


async def test_long_poll_wakes_on_completion_without_busy_looping(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    emulator.reset(durationMedian=150.0, durationSigma=0.01)  # ~1.5 s at speed 100
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    created = await start_tryon(api, image_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await api.get(f"/v1/try-ons/{created['id']}", params={"wait": 20})
    elapsed = loop.time() - started
    assert r.json()["status"] == "completed"
    assert 0.5 < elapsed < 5.0
    # a long poll that times out answers with the current state
    other = await start_tryon(api, image_id, reuse=False)  # not from the result cache
    r = await api.get(f"/v1/try-ons/{other['id']}", params={"wait": 0.2})
    assert r.json()["status"] in ("queued", "submitting", "running")


async def test_sse_streams_each_state_until_terminal(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    emulator.reset(durationMedian=100.0, durationSigma=0.01)
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    created = await start_tryon(api, image_id)
    events: list[str] = []
    async with api.stream("GET", f"/v1/try-ons/{created['id']}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[-1] == "completed"
    assert len(events) == len(set(events))  # each state once, in order
    order = ["queued", "submitting", "running", "completed"]
    assert [e for e in order if e in events] == events


async def test_idempotency_key_returns_the_same_tryon(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    body = {"products": [{"externalId": "tee"}], "person": {"image": {"source": {"id": image_id}}}}
    headers = {"Idempotency-Key": "order-77"}
    first = await api.post("/v1/try-ons", json=body, headers=headers)
    again = await api.post("/v1/try-ons", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = await api.post("/v1/try-ons", json={**body, "metadata": {"x": 1}}, headers=headers)
    assert changed.status_code == 409
    assert changed.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    await wait_terminal(api, first.json()["id"])
    assert emulator.counters()["generationsCreated"] == 1


async def test_cancel_after_submission_is_refused(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    created = await start_tryon(api, image_id)
    await wait_terminal(api, created["id"])
    r = await api.delete(f"/v1/try-ons/{created['id']}")
    assert r.status_code == 409
    assert r.json()["code"] == "TRYON_NOT_CANCELABLE"


async def test_other_apps_cannot_see_a_tryon(
    api: httpx.AsyncClient, gateway: Gateway, emulator: Emulator
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    created = await start_tryon(api, image_id)
    async with gateway.client(OTHER_SECRET) as other:
        for method, path in [
            ("GET", f"/v1/try-ons/{created['id']}"),
            ("GET", f"/v1/try-ons/{created['id']}/events"),
            ("DELETE", f"/v1/try-ons/{created['id']}"),
        ]:
            r = await other.request(method, path)
            assert r.status_code == 404, (method, path)
            assert r.json()["code"] == "TRYON_NOT_FOUND"
        # nor use its photo or its catalog
        body = {
            "products": [{"externalId": "tee"}],
            "person": {"image": {"source": {"id": image_id}}},
        }
        r = await other.post("/v1/try-ons", json=body)
        assert r.status_code == 404


async def test_product_cache_sends_a_reference_the_second_time(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    first = await start_tryon(api, image_id)
    await wait_terminal(api, first["id"])
    second = await start_tryon(api, image_id, reuse=False)  # not from the result cache
    await wait_terminal(api, second["id"])
    c = emulator.counters()
    assert c["generationsCreated"] == 2
    assert c["productReferences"] == 1
    assert c["productInlineUpserts"] == 1
    # a changed definition is sent inline again
    await put_product(api, emulator, title="Red tee v2")
    third = await start_tryon(api, image_id)
    await wait_terminal(api, third["id"])
    assert emulator.counters()["productInlineUpserts"] == 2


async def test_expired_product_is_recovered_without_losing_a_credit(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    first = await start_tryon(api, image_id)
    await wait_terminal(api, first["id"])
    credits_before = emulator.counters()["creditsSpent"]
    # Genlook drops inline products 15 days after last use; our cache has not noticed.
    emulator.control("POST", "clock/advance", {"seconds": 16 * 86400})
    second = await start_tryon(api, image_id, reuse=False)  # not from the result cache
    done = await wait_terminal(api, second["id"])
    assert done["status"] == "completed", done
    c = emulator.counters()
    assert c["creditsSpent"] == credits_before + 1
    assert c["generationsCreated"] == 2


async def test_twenty_concurrent_uploads_of_one_photo_reach_genlook_once(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    data = photo_bytes((10, 200, 30))
    ids = await asyncio.gather(*(upload_photo(api, data) for _ in range(20)))
    assert len(set(ids)) == 20
    await put_product(api, emulator)
    created = await asyncio.gather(*(start_tryon(api, i) for i in ids))
    for c in created:
        assert (await wait_terminal(api, c["id"]))["status"] == "completed"
    assert emulator.counters()["requests"]["upload_image"] == 1


async def test_gdpr_erase_removes_every_trace(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis
) -> None:
    image_id = await upload_photo(api, externalUserId="user-9")
    await put_product(api, emulator)
    created = await start_tryon(api, image_id, externalUserId="user-9")
    done = await wait_terminal(api, created["id"])
    result_url = done["result"]["imageUrl"]
    assert (await fetch(result_url)).status_code == 200

    r = await api.delete("/v1/customers/user-9")
    assert r.status_code == 204
    assert (await api.get(f"/v1/try-ons/{created['id']}")).status_code == 404
    assert (await fetch(result_url)).status_code == 404
    leftovers = [k.decode() for k in await redis.keys("*") if b"user-9" in k]
    assert leftovers == []
    assert await redis.get(f"tryon:img:{image_id}") is None
    # idempotent
    assert (await api.delete("/v1/customers/user-9")).status_code == 204
