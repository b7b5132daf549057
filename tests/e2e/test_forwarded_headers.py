"""`X-Forwarded-For` over real HTTP: a served gateway (`tryon-gateway serve`) trusts it only
from the load balancers `GATEWAY_TRUSTED_PROXIES` counts. With none, a client on loopback that
forges a new address per request is still one IP to the per-IP anonymous quota."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import Gateway, keys_cli, photo_bytes, product_url, start_gateway

ORIGIN = "https://shop.example"
PER_IP = 2


@pytest.fixture(scope="module")
def behind_one_proxy(emulator_process: Emulator) -> Iterator[Gateway]:
    gw = start_gateway(emulator_process, GATEWAY_TRUSTED_PROXIES="1")
    yield gw
    gw.stack.stop_all()


async def _anonymous_tryons(gateway: Gateway, emulator: Emulator) -> list[httpx.Response]:
    """Five anonymous try-ons from 127.0.0.1, each with its own forged X-Forwarded-For."""
    made = keys_cli(
        "create", "Shop", "--id", "shop", "--origin", ORIGIN, "--anonymous",
        "--anonymous-per-day", str(PER_IP), "--ip-rate", "1000",
    )  # fmt: skip
    async with gateway.client(made["secretKey"]) as server:
        r = await server.put(
            "/v1/products/tee",
            json={"title": "tee", "images": [{"source": {"url": product_url(emulator)}}]},
        )
        assert r.status_code in (200, 201), r.text
    browser = {"Authorization": f"Bearer {made['publishableKey']}", "Origin": ORIGIN}
    answers = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        for i in range(1, 6):
            # A browser tries on a photo of its own (anonymous: its client's), uploaded as it.
            headers = {**browser, "X-Forwarded-For": f"203.0.113.{i}"}
            photo = ("me.jpg", photo_bytes(), "image/jpeg")
            r = await client.post("/v1/images", files={"file": photo}, headers=headers)
            assert r.status_code == 201, r.text
            body = {
                "products": [{"externalId": "tee"}],
                "person": {"image": {"source": {"id": r.json()["id"]}}},
            }
            answers.append(await client.post("/v1/try-ons", json=body, headers=headers))
    return answers


async def test_forged_forwarded_for_does_not_multiply_a_per_ip_quota(
    gateway: Gateway, emulator: Emulator, redis: Redis
) -> None:
    answers = await _anonymous_tryons(gateway, emulator)
    statuses = [r.status_code for r in answers]
    assert statuses == [202] * PER_IP + [402] * (5 - PER_IP), [r.text for r in answers]
    assert answers[-1].json()["code"] == "ANONYMOUS_QUOTA_EXHAUSTED"


async def test_the_configured_proxy_is_trusted(
    behind_one_proxy: Gateway, emulator: Emulator, redis: Redis
) -> None:
    # Behind one trusted load balancer, each header names a different client: all accepted.
    answers = await _anonymous_tryons(behind_one_proxy, emulator)
    assert [r.status_code for r in answers] == [202] * 5, [r.text for r in answers]
