"""The `/demo` storefront and `/sdk/tryon.js` as served, and the demo end to end in a real
headless Chromium against a real gateway, worker, Redis and the emulator.

The end-to-end test reads the page, not the API: it chooses a generated JPEG in the file input,
presses "Try on" and waits for the result image to be rendered; only then does it check with
the app's secret key what the page did (one try-on, completed, for the end user whose id the
page keeps in localStorage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from service.app import create_app
from service.demo import DEMO_PRODUCTS, emulator_asset_root, upsert_demo_catalog
from service.keys import Keys
from service.products import Catalog
from service.settings import GatewaySettings, RedisSettings, Settings

from tests.conftest import TEST_REDIS_URL, Emulator
from tests.e2e.browser_stack import (
    KEY_CACHE_SECONDS,
    WAIT_MS,
    BrowserApp,
    chromium,
    create_browser_app,
    jpeg_file,
    needs_chromium,
)
from tests.e2e.conftest import Gateway, stack_fixture

DEMO_APP = "demoshop"


gateway = stack_fixture(GATEWAY_DEMO_APP=DEMO_APP, GATEWAY_KEY_CACHE_SECONDS=KEY_CACHE_SECONDS)


@pytest.fixture
async def demo_app(gateway: Gateway, emulator: Emulator, redis: Redis) -> BrowserApp:
    """The demo app on a clean database: its page is served by the gateway itself, so the
    gateway's origin is the one allowed; its catalog is what `tryon-gateway dev` puts there."""
    app = await create_browser_app(redis, DEMO_APP, gateway.url)
    await upsert_demo_catalog(
        Catalog(redis, Keys()), DEMO_APP, emulator_asset_root(emulator.base_url)
    )
    return app


async def test_sdk_is_served_as_a_cacheable_cross_origin_module(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.get("/sdk/tryon.js", headers={"Origin": "https://shop.example"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "export class TryOnClient" in r.text
        assert "export class TryOnError" in r.text
        # Imported by other sites' pages: module scripts are fetched in CORS mode.
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["cache-control"] == "public, max-age=300"
        etag = r.headers["etag"]
        again = await client.get("/sdk/tryon.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""


async def test_demo_session_mints_a_token_and_lists_the_catalog(
    gateway: Gateway, demo_app: BrowserApp
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        page = await client.get("/demo")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for bad in ({}, {"externalUserId": ""}, {"externalUserId": "a b"}, {"other": "x"}):
            r = await client.post("/demo/session", json=bad)
            assert r.status_code == 400, r.text
            assert r.json()["code"] == "VALIDATION_FAILED"
        r = await client.post("/demo/session", content=b"{not json")
        assert r.json()["code"] == "MALFORMED_JSON"

        first = (await client.post("/demo/session", json={"externalUserId": "visitor-1"})).json()
        second = (await client.post("/demo/session", json={"externalUserId": "visitor-1"})).json()
    assert first["publishableKey"].startswith("pk_")
    # One key for the demo, kept: every visitor and every gateway hands out the same one.
    assert second["publishableKey"] == first["publishableKey"]
    assert first["token"] != second["token"]
    assert first["externalUserId"] == "visitor-1"
    assert first["maxTryOns"] == 5
    assert [p["id"] for p in first["products"]] == [p.external_id for p in DEMO_PRODUCTS]
    assert all(p["imageUrl"].endswith(".png") for p in first["products"])

    # The token works as the end user it names, with the handed-out key.
    browser_headers = {
        "Authorization": f"Bearer {first['publishableKey']}",
        "X-Tryon-Token": first["token"],
        "Origin": gateway.url,
    }
    async with httpx.AsyncClient(base_url=gateway.url, headers=browser_headers) as client:
        r = await client.post(
            "/v1/images", files={"file": ("p.jpg", jpeg_file()["buffer"], "image/jpeg")}
        )
        assert r.status_code == 201, r.text


async def test_demo_and_its_session_route_are_off_without_a_demo_app(redis: Redis) -> None:
    settings = Settings(
        redis=RedisSettings(url=TEST_REDIS_URL), gateway=GatewaySettings(access_log=False)
    )
    async with AsyncTestClient(create_app(settings)) as client:
        assert (await client.get("/sdk/tryon.js")).status_code == 200
        for method, path in (("GET", "/demo"), ("POST", "/demo/session")):
            r = await client.request(method, path, json={"externalUserId": "u"})
            assert r.status_code == 404
            assert r.json()["code"] == "NOT_FOUND"


async def test_demo_naming_a_missing_app_answers_503(redis: Redis) -> None:
    settings = Settings(
        redis=RedisSettings(url=TEST_REDIS_URL),
        gateway=GatewaySettings(access_log=False, demo_app="no-such-app"),
    )
    async with AsyncTestClient(create_app(settings)) as client:
        assert (await client.get("/demo")).status_code == 200
        r = await client.post("/demo/session", json={"externalUserId": "u"})
        assert r.status_code == 503
        assert r.json()["code"] == "DEMO_UNAVAILABLE"


@pytest.fixture
async def demo_page(gateway: Gateway, demo_app: BrowserApp) -> AsyncIterator[Any]:
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        assert errors == [], errors


@needs_chromium
async def test_demo_end_to_end_in_chromium(
    gateway: Gateway, demo_app: BrowserApp, demo_page: Any
) -> None:
    from playwright.async_api import expect

    page = demo_page
    await page.goto(f"{gateway.url}/demo")
    # The catalog, from the demo backend, rendered as choices; the first is preselected.
    products = page.locator("#products li")
    await expect(products).to_have_count(len(DEMO_PRODUCTS), timeout=WAIT_MS)
    await expect(products.nth(1)).to_contain_text("Blue hoodie")
    await expect(page.locator("#tryon")).to_be_disabled()

    await page.locator("#products label").nth(1).click()
    await page.set_input_files("#photo", jpeg_file())
    await expect(page.locator("#preview")).to_be_visible()
    await expect(page.locator("#tryon")).to_be_enabled()
    await page.click("#tryon")

    result = page.locator("#result-image")
    await expect(result).to_be_visible(timeout=WAIT_MS)
    rendered = await result.evaluate("img => img.complete && img.naturalWidth > 0")
    assert rendered
    await expect(page.locator("#status")).to_have_text("Done.")
    await expect(page.locator("#steps li.done")).to_have_count(5)
    await expect(page.locator("#error")).to_be_hidden()

    # What the page did, seen with the app's secret key.
    tryon_id = await page.locator("#result").get_attribute("data-tryon-id")
    user = await page.evaluate("localStorage.getItem('tryonDemoUser')")
    assert isinstance(user, str)
    assert user.startswith("demo-")
    async with gateway.client(demo_app.secret_key) as api:
        r = await api.get(f"/v1/try-ons/{tryon_id}")
    assert r.status_code == 200, r.text
    tryon = r.json()
    assert tryon["status"] == "completed"
    assert tryon["productExternalId"] == "blue-hoodie"
    assert tryon["externalUserId"] == user
    assert await result.get_attribute("src") == tryon["result"]["imageUrl"]

    # A reload keeps the shopper (same localStorage id) and works again.
    await page.reload()
    await expect(products).to_have_count(len(DEMO_PRODUCTS), timeout=WAIT_MS)
    assert await page.evaluate("localStorage.getItem('tryonDemoUser')") == user
