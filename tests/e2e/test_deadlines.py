"""A deadline passed in the queue spends nothing, over real HTTP: a gateway with no worker yet
accepts two try-ons, one with `deadlineSeconds: 1`; the worker starts after that second. The
one with a deadline ends DEADLINE_EXCEEDED, reported to its SSE stream and its callback URL, and
the emulator counts one generation and one credit: the other try-on's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import put_product, start_gateway, start_tryon, upload_photo, wait_terminal
from tests.e2e.receiver import Receiver


async def sse_statuses(api: httpx.AsyncClient, tryon_id: str) -> list[dict[str, Any]]:
    """Every try-on view the events stream sends, until a terminal one."""
    views = []
    async with api.stream("GET", f"/v1/try-ons/{tryon_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                views.append(json.loads(line[5:]))
                if views[-1]["status"] in ("completed", "failed", "canceled"):
                    break
    return views


async def test_a_deadline_passed_in_the_queue_spends_nothing(
    emulator: Emulator, redis: Redis
) -> None:
    gw = start_gateway(emulator, workers=0, WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1")
    receiver = await Receiver().start()
    try:
        async with gw.client() as api:
            image_id = await upload_photo(api)
            await put_product(api, emulator)
            late = await start_tryon(
                api, image_id, deadlineSeconds=1, callbackUrl=f"{receiver.url}/hook"
            )
            waited_for = await start_tryon(api, image_id)
            stream = asyncio.create_task(sse_statuses(api, late["id"]))
            await asyncio.sleep(1.5)  # no worker yet: the deadline passes in the queue
            gw.add_worker("worker0")

            views = await asyncio.wait_for(stream, 30)
            assert [v["status"] for v in views] == ["queued", "failed"]
            assert views[-1]["error"]["code"] == "DEADLINE_EXCEEDED"
            [hook] = await receiver.wait_for(1)
            event = json.loads(hook.body)
            assert event["type"] == "tryon.failed"
            assert event["data"]["id"] == late["id"]
            assert event["data"]["error"]["code"] == "DEADLINE_EXCEEDED"
            done = await wait_terminal(api, waited_for["id"])
            assert done["status"] == "completed"

        counters = emulator.counters()
        assert counters["generationsCreated"] == 1
        assert counters["creditsSpent"] == 1
    finally:
        await receiver.stop()
        gw.stack.stop_all()
