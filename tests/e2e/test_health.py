"""/healthz and /readyz follow what the gateway depends on: Redis and live workers."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from tests.conftest import Emulator
from tests.e2e.conftest import running_stack
from tests.e2e.redis_server import PersistentRedis

pytestmark = pytest.mark.slow


async def wait_ready(
    client: httpx.AsyncClient, ready: bool, within: float = 20
) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await client.get("/readyz")
        body: dict[str, object] = r.json()
        if (r.status_code == 200) == ready:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"readyz stayed {r.status_code}: {body}")
        await asyncio.sleep(0.2)


async def test_readyz_follows_redis_and_workers(
    emulator: Emulator, persistent_redis: PersistentRedis
) -> None:
    with running_stack(
        emulator, REDIS_URL=persistent_redis.url, WORKER_HEALTH_CHECK_INTERVAL="1"
    ) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            assert (await wait_ready(client, True))["status"] == "ready"
            gw.stack.stop("worker0", signal.SIGTERM)
            body = await wait_ready(client, False)
            assert body["reasons"] == ["no live worker"]
            gw.add_worker("worker0")
            await wait_ready(client, True)
            persistent_redis.stop()
            body = await wait_ready(client, False)
            assert any("redis unreachable" in str(r) for r in body["reasons"])  # type: ignore[attr-defined]
            assert (await client.get("/healthz")).status_code == 200
            persistent_redis.start()
            await wait_ready(client, True, within=30)
