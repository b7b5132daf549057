"""Deliveries survive a Redis restart (with persistence) and endpoints failing for days are
disabled."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import running_stack, start_gateway, wait_terminal
from tests.e2e.receiver import Receiver, Reply
from tests.e2e.redis_server import PersistentRedis
from tests.e2e.test_webhooks import SCALE, register, tryon

pytestmark = pytest.mark.slow


async def test_redis_restart_loses_no_delivery(
    emulator: Emulator, persistent_redis: PersistentRedis
) -> None:
    down = await Receiver().start()
    port = down.port
    await down.stop()
    with running_stack(
        emulator,
        REDIS_URL=persistent_redis.url,
        WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
        WEBHOOK_TIME_SCALE=str(SCALE),
    ) as gw:
        async with gw.client() as api:
            await register(api, f"http://127.0.0.1:{port}/")
            ids = [await tryon(api, emulator) for _ in range(5)]
            for t in ids:
                await wait_terminal(api, t)
            persistent_redis.stop()
            await asyncio.sleep(1.0)
            persistent_redis.start()
            back = await Receiver(port=port).start()
            try:
                requests = await back.wait_for(5, within=60)
                assert {json.loads(r.body)["data"]["id"] for r in requests} == set(ids)
            finally:
                await back.stop()


async def test_an_endpoint_failing_for_days_is_disabled(emulator: Emulator, redis: Redis) -> None:
    failing = await Receiver(reply=lambda r: Reply(500)).start()
    # 0.01 days at scale 1000 = 0.86 s of failures
    gw = start_gateway(
        emulator,
        WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
        WEBHOOK_TIME_SCALE=str(SCALE),
        WEBHOOK_DISABLE_AFTER_DAYS="0.01",
    )
    try:
        async with gw.client() as api:
            endpoint = await register(api, failing.url)
            await tryon(api, emulator)
            for _ in range(100):
                state = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
                if not state["enabled"]:
                    break
                await asyncio.sleep(0.1)
            assert state["enabled"] is False
            assert state["disabledReason"].startswith("failing since")
    finally:
        gw.stack.stop_all()
        await failing.stop()
