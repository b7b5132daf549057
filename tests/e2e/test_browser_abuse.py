"""Browser access over real HTTP against a running gateway and worker: an app made with the
`tryon-gateway keys` CLI, concurrent bursts against a token quota and a daily credit cap
(never over by one, counted against the emulator's generations), and a unit given back when
Genlook fails a generation (it refunds the credit, so the user may try again)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import (
    Gateway,
    keys_cli,
    photo_bytes,
    product_url,
    stack_fixture,
    wait_terminal,
)

ORIGIN = "https://shop.example"

# Counted try-ons of one photo and product, each a generation: the result cache off.
gateway = stack_fixture(RESULTS_REUSE_TTL="0")


class Browser:
    """What a page does: the publishable key and one end user's token, from an allowed origin."""

    def __init__(self, gateway: Gateway, pk: str, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=gateway.url,
            headers={"Authorization": f"Bearer {pk}", "X-Tryon-Token": token, "Origin": ORIGIN},
            timeout=30.0,
        )

    async def upload(self) -> str:
        r = await self.client.post(
            "/v1/images", files={"file": ("me.jpg", photo_bytes(), "image/jpeg")}
        )
        assert r.status_code == 201, r.text
        image_id: str = r.json()["id"]
        return image_id

    async def tryon(self, image_id: str, product: str = "tee") -> httpx.Response:
        return await self.client.post(
            "/v1/try-ons",
            json={
                "products": [{"externalId": product}],
                "person": {"image": {"source": {"id": image_id}}},
            },
        )


class Shop:
    def __init__(self, gateway: Gateway, made: dict[str, Any]) -> None:
        self.gateway = gateway
        self.sk: str = made["secretKey"]
        self.pk: str = made["publishableKey"]
        self.server = gateway.client(self.sk)

    async def browser(self, user: str, **limits: Any) -> Browser:
        r = await self.server.post("/v1/sessions", json={"externalUserId": user, **limits})
        assert r.status_code == 201, r.text
        return Browser(self.gateway, self.pk, r.json()["token"])


@pytest.fixture
async def shop(gateway: Gateway, emulator: Emulator, redis: Redis) -> AsyncIterator[Shop]:
    made = keys_cli(
        "create",
        "Shop",
        "--id",
        "shop",
        "--origin",
        ORIGIN,
        "--user-rate",
        "1000",
        "--ip-rate",
        "1000",
    )
    shop = Shop(gateway, made)
    for external_id, image in (("tee", "red-tee.png"), ("broken", "no-such-picture.png")):
        r = await shop.server.put(
            f"/v1/products/{external_id}",
            json={
                "title": external_id,
                "images": [{"source": {"url": product_url(emulator, image)}}],
            },
        )
        assert r.status_code in (200, 201), r.text
    yield shop
    await shop.server.aclose()


async def _settle(shop: Shop, responses: list[httpx.Response]) -> list[dict[str, Any]]:
    accepted = [r.json()["id"] for r in responses if r.status_code == 202]
    return [await wait_terminal(shop.server, tryon_id) for tryon_id in accepted]


async def test_cli_lists_hints_never_keys(shop: Shop) -> None:
    listed = keys_cli("list")
    app = next(a for a in listed["apps"] if a["app"]["id"] == "shop")
    assert app["app"]["policy"]["allowed_origins"] == [ORIGIN]
    assert {k["kind"] for k in app["keys"]} == {"secret", "publishable"}
    assert shop.sk not in json.dumps(listed)


async def test_token_quota_holds_under_fifty_concurrent_requests(
    shop: Shop, emulator: Emulator
) -> None:
    browser = await shop.browser("alice", maxTryOns=5)
    image_id = await browser.upload()
    responses = await asyncio.gather(*(browser.tryon(image_id) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 5, statuses
    assert statuses.count(402) == 45, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 402} == {
        "TOKEN_QUOTA_EXHAUSTED"
    }
    done = await _settle(shop, responses)
    assert [t["status"] for t in done] == ["completed"] * 5
    assert emulator.counters()["generationsCreated"] == 5


async def test_daily_cap_holds_across_users_under_fifty_concurrent_requests(
    shop: Shop, emulator: Emulator
) -> None:
    keys_cli("policy", "shop", "--daily-cap", "7")
    await asyncio.sleep(0.2)
    browsers = [await shop.browser(f"user-{i}", maxTryOns=3) for i in range(50)]
    images = await asyncio.gather(*(b.upload() for b in browsers))
    # The gateway caches an app's policy for up to GATEWAY_KEY_CACHE_SECONDS (5 s).
    await asyncio.sleep(5.2)
    responses = await asyncio.gather(*(b.tryon(i) for b, i in zip(browsers, images, strict=True)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 7, statuses
    refused = {r.json()["code"] for r in responses if r.status_code != 202}
    assert refused == {"DAILY_CREDIT_CAP_REACHED"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 402)
    await _settle(shop, responses)
    assert emulator.counters()["generationsCreated"] == 7


async def test_a_generation_that_fails_upstream_gives_its_unit_back(
    shop: Shop, emulator: Emulator
) -> None:
    browser = await shop.browser("bob", maxTryOns=1)
    image_id = await browser.upload()
    first = await browser.tryon(image_id, "broken")
    assert first.status_code == 202, first.text
    failed = await wait_terminal(shop.server, first.json()["id"])
    assert failed["status"] == "failed"
    # Genlook refunded the credit; the token's one try-on is available again.
    second = await browser.tryon(image_id, "tee")
    assert second.status_code == 202, second.text
    assert (await wait_terminal(shop.server, second.json()["id"]))["status"] == "completed"
    third = await browser.tryon(image_id, "tee")
    assert third.status_code == 402
