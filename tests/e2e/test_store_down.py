"""Redis unreachable: the gateway answers 503 STORE_UNAVAILABLE with Retry-After (never a 500)
and serves again once Redis is back, without a restart of its own."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Emulator, assert_error
from tests.e2e.conftest import keys_cli, photo_bytes, running_stack
from tests.e2e.redis_server import PersistentRedis

ORIGIN = "https://shop.example"


async def test_store_down_is_a_retryable_503(
    emulator: Emulator, persistent_redis: PersistentRedis
) -> None:
    tryon = {
        "products": [{"externalId": "tee"}],
        "person": {"image": {"source": {"url": "http://127.0.0.1:1/p.jpg"}}},
    }
    with running_stack(
        emulator, workers=0, REDIS_URL=persistent_redis.url, REDIS_SOCKET_TIMEOUT="2"
    ) as gw:
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


async def test_a_browser_reads_the_503_while_the_store_is_down(
    emulator: Emulator, persistent_redis: PersistentRedis
) -> None:
    """The edge asks Redis which origins to grant outside the app's error handling: with the
    store down it grants the origins it last knew (a browser can read the 503 and retry), grants
    nothing it never knew, and never answers 500."""
    made = keys_cli("create", "Shop", "--id", "shop", "--origin", ORIGIN,
                    redis_url=persistent_redis.url)  # fmt: skip
    browser = {"Authorization": f"Bearer {made['publishableKey']}", "Origin": ORIGIN}
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    with running_stack(
        emulator,
        workers=0,
        REDIS_URL=persistent_redis.url,
        REDIS_SOCKET_TIMEOUT="2",
        GATEWAY_KEY_CACHE_SECONDS="0.2",
    ) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            r = await client.options("/v1/try-ons/to_missing", headers=preflight)
            assert r.status_code == 204  # the origins are now known
            persistent_redis.stop()
            await asyncio.sleep(0.3)  # past the key cache: every lookup goes to Redis
            r = await client.options("/v1/try-ons/to_missing", headers=preflight)
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == ORIGIN
            r = await client.get("/v1/try-ons/to_missing", headers=browser)
            assert_error(r, 503, "STORE_UNAVAILABLE")
            assert r.headers["access-control-allow-origin"] == ORIGIN
            other = {**preflight, "Origin": "https://elsewhere.example"}
            r = await client.options("/v1/try-ons/to_missing", headers=other)
            assert r.status_code == 403
            assert "access-control-allow-origin" not in r.headers
