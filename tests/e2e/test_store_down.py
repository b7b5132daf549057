"""Redis unreachable: the gateway answers 503 STORE_UNAVAILABLE with Retry-After (never a 500)
and serves again once Redis is back, without a restart of its own."""

from __future__ import annotations

import asyncio

from tests.conftest import Emulator, assert_error
from tests.e2e.conftest import photo_bytes, start_gateway
from tests.e2e.redis_server import PersistentRedis


async def test_store_down_is_a_retryable_503(
    emulator: Emulator, persistent_redis: PersistentRedis
) -> None:
    gw = start_gateway(
        emulator, workers=0, REDIS_URL=persistent_redis.url, REDIS_SOCKET_TIMEOUT="2"
    )
    tryon = {
        "products": [{"externalId": "tee"}],
        "person": {"image": {"source": {"url": "http://127.0.0.1:1/p.jpg"}}},
    }
    try:
        async with gw.client() as api:
            persistent_redis.stop()
            for request in (
                api.post("/v1/try-ons", json=tryon),
                api.get("/v1/try-ons/to_missing"),
                api.post("/v1/images", files={"file": ("p.jpg", photo_bytes(), "image/jpeg")}),
                api.get("/v1/products"),
            ):
                r = await request
                assert_error(r, 503, "STORE_UNAVAILABLE")
                assert r.headers["retry-after"] == "1"
            persistent_redis.start()
            for _ in range(50):
                r = await api.get("/v1/try-ons/to_missing")
                if r.status_code == 404:
                    break
                await asyncio.sleep(0.1)
            assert_error(r, 404, "TRYON_NOT_FOUND")
    finally:
        gw.stack.stop_all()
