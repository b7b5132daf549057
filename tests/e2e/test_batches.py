"""Batches end to end: a gateway and a worker as processes, the emulator and a webhook receiver
over HTTP. A batch canceled halfway spends only what was sent (the emulator's own counters);
its `batch.completed` webhook arrives once; its SSE progress ends with `completed`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import put_product, running_stack, upload_photo
from tests.e2e.receiver import Receiver

# 20 requests per 6 s window: about three creates a second, so a batch of 20 is still being
# sent when the test cancels it. The result cache off: the batch's 20 try-ons are identical and
# would otherwise make one generation between them (tests/e2e/test_result_cache.py).
_SLOW_BUDGET = {
    "GENLOOK_RATE_LIMIT": "20",
    "GENLOOK_RATE_WINDOW": "6",
    "WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
    "RESULTS_REUSE_TTL": "0",
}


async def _progress(api: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    views = []
    async with api.stream("GET", f"/v1/batches/{batch_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                views.append(json.loads(line[5:]))
                if views[-1]["status"] == "completed":
                    break
    return views


def _creates(emulator: Emulator) -> int:
    requests = emulator.counters()["requests"]
    return int(requests.get("create_try_on_sync", 0) + requests.get("create_try_on", 0))


async def test_a_batch_canceled_halfway_spends_only_what_was_sent(
    emulator: Emulator, redis: Redis
) -> None:
    receiver = await Receiver().start()
    try:
        with running_stack(emulator, **_SLOW_BUDGET) as gw:
            async with gw.client() as api:
                await put_product(api, emulator)
                image_id = await upload_photo(api)
                request = {
                    "json": {
                        "person": {"image": {"source": {"id": image_id}}},
                        "products": [{"externalId": "tee"}] * 20,
                        "callbackUrl": f"{receiver.url}/hooks",
                    },
                    "headers": {"Idempotency-Key": "halfway"},
                }
                r = await api.post("/v1/batches", **request)
                assert r.status_code == 202, r.text
                batch = r.json()
                progress = asyncio.create_task(_progress(api, batch["id"]))
                # The emulator's counters are polled over HTTP: there is no event to await.
                async with asyncio.timeout(30):
                    while await asyncio.to_thread(_creates, emulator) < 4:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                r = await api.delete(f"/v1/batches/{batch['id']}")
                assert r.status_code == 200, r.text
                assert r.json()["canceled"] is True
                views = await asyncio.wait_for(progress, 60)
                done = views[-1]
                counts = done["counts"]
                assert counts["pending"] == 0
                assert counts["canceled"] >= 10, counts
                assert counts["completed"] + counts["failed"] + counts["canceled"] == 20
                # Every try-on sent was paid once; nothing canceled was sent.
                c = await asyncio.to_thread(emulator.counters)
                assert await asyncio.to_thread(_creates, emulator) == counts["completed"]
                assert c["generationsCreated"] == counts["completed"]
                assert c["creditsSpent"] - c["creditsRefunded"] == counts["completed"]
                # One batch.completed at the callback (per-try-on events were not asked for).
                await receiver.wait_for(1, within=30)
                await asyncio.sleep(1.0)  # a second delivery would have arrived by now
                assert len(receiver.received) == 1
                event = json.loads(receiver.received[0].body)
                assert event["type"] == "batch.completed"
                assert event["data"]["id"] == batch["id"]
                assert event["data"]["counts"] == {
                    k: counts[k] for k in ("completed", "failed", "canceled")
                }
                assert receiver.received[0].headers["webhook-id"]
                # The same request again is the same batch, with nothing new accepted.
                again = await api.post("/v1/batches", **request)
                assert again.status_code == 202
                assert again.json()["id"] == batch["id"]
                assert again.json()["status"] == "completed"
    finally:
        await receiver.stop()
