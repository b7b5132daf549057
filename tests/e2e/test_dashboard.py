"""The ops dashboard in a real headless Chromium, against a real gateway and worker.

A known workload (three completed try-ons, one refused upstream for lack of credits), then the
page: log in with the admin token, read what it shows, pause and resume intake from it (and see
POST /v1/try-ons refused meanwhile), retry the failed try-on from it (and see it complete), and
a refused look-up shown with its code. With UPDATE_SCREENSHOTS=1 the screenshot lands in
docs/ops-dashboard.png.

Needs Debian's `chromium` (/usr/bin/chromium); Playwright only drives it (no browser download).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from service.keys import Keys
from service.ops.history import record_sample

from tests.conftest import Emulator
from tests.e2e.browser_stack import chromium, needs_chromium
from tests.e2e.conftest import (
    Gateway,
    eventually,
    put_product,
    stack_fixture,
    start_tryon,
    upload_photo,
    wait_terminal,
)

pytestmark = needs_chromium
playwright_api = pytest.importorskip("playwright.async_api")

ADMIN = "ops_dash_admin_token_0123456789abcdef"
# The docs' screenshot is refreshed only on request (UPDATE_SCREENSHOTS=1), so a test run
# leaves the work tree clean.
SCREENSHOT = (
    Path(__file__).resolve().parents[2] / "docs" / "ops-dashboard.png"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "tryon-ops-dashboard.png"
)
# Playwright waits, in milliseconds.
WAIT_MS = 10_000


gateway = stack_fixture(OPS_ADMIN_TOKENS=f"{ADMIN}=dash", WORKER_HEALTH_CHECK_INTERVAL="1")


@pytest.fixture
async def browser_page(gateway: Gateway) -> AsyncIterator[Any]:
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1440, "height": 1000})
        yield page


async def test_the_page_holds_no_data_without_a_token(gateway: Gateway, redis: Redis) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        page = await client.get("/ops")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert (await client.get("/ops/dashboard.js")).status_code == 200
        refused = await client.get("/ops/api/history")
        assert refused.status_code == 401
        assert refused.json()["code"] == "ADMIN_TOKEN_REQUIRED"
        ok = await client.get("/ops/api/history", headers={"Authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["samples"] == []
        assert ok.json()["now"]["workersLive"] >= 0


async def test_dashboard_shows_the_fleet_and_steers_it(
    gateway: Gateway,
    api: httpx.AsyncClient,
    emulator: Emulator,
    redis: Redis,
    browser_page: Any,
) -> None:
    page = browser_page
    keys = Keys()

    async def sample() -> None:
        # What the worker's sweep does on every tick; called here to get points now.
        await record_sample(redis, keys, gateway.queue, min_gap=0)

    # --- a known workload: three completed, one refused upstream (no credits) ----------------
    await sample()
    await put_product(api, emulator)
    image_id = await upload_photo(api)
    # Each generated (not from the result cache).
    done = [await start_tryon(api, image_id, reuse=False) for _ in range(3)]
    await sample()
    for t in done:
        assert (await wait_terminal(api, t["id"]))["status"] == "completed"
    await sample()
    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 0})
    refused = await start_tryon(api, image_id, reuse=False)
    failed = await wait_terminal(api, refused["id"])
    assert failed["error"]["code"] == "INSUFFICIENT_CREDITS"
    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 10})
    await sample()

    # --- log in: a wrong token is refused with the API's code, the right one opens it ---------
    await page.goto(f"{gateway.url}/ops")
    await page.fill("#token", "not_the_admin_token_0123456789")
    await page.click("#login-form button[type=submit]")
    error = page.locator("#login-error")
    await playwright_api.expect(error).to_contain_text("ADMIN_TOKEN_REQUIRED", timeout=WAIT_MS)

    await page.fill("#token", ADMIN)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("body[data-loaded='1']", timeout=WAIT_MS)

    def at(selector: str) -> Any:
        return page.locator(selector)

    expect = playwright_api.expect
    # Health: both running, the worker listed with a recent beat.
    await expect(at("#intake-state")).to_have_text("running")
    await expect(at("#processing-state")).to_have_text("running")
    await expect(at("#workers-count")).to_have_text("1", timeout=WAIT_MS)
    await expect(at("#workers tbody")).to_contain_text("ago")
    # Spend and outcomes from the fleet counters: 3 completed (3 credits), 1 failed.
    await expect(at("#s-finished")).to_have_text("3 / 1", timeout=WAIT_MS)
    await expect(at("#s-credits")).to_have_text("3 / 3")
    # Usage over the last seven days, by app: the same workload, counted by the same rule.
    await expect(at("#usage tbody tr td")).to_have_text(["shop", "4", "3", "1", "0", "3"])
    # What fails and why: the refused try-on with Genlook's code, marked safe to retry.
    row = at(f"#failed tbody tr[data-id='{refused['id']}']")
    await expect(row).to_contain_text("INSUFFICIENT_CREDITS", timeout=WAIT_MS)
    await expect(row).to_contain_text("safe")
    await expect(at("#failed-count")).to_have_text("1")
    await expect(at("#chart-finished path")).to_have_count(2)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    # --- pause intake from the page: new try-ons get 503 INTAKE_PAUSED ---------------------
    body = {"products": [{"externalId": "tee"}], "person": {"image": {"source": {"id": image_id}}}}
    await at("#pause-reason").fill("dashboard e2e")
    await at("#intake-toggle").click()
    await expect(at("#intake-state")).to_contain_text("PAUSED by dash", timeout=WAIT_MS)
    await expect(at("#intake-state")).to_contain_text("(dashboard e2e)")
    await expect(at("#intake-toggle")).to_have_text("Resume intake")
    last: list[httpx.Response] = []

    async def refused_now() -> bool:
        last.append(await api.post("/v1/try-ons", json=body))
        return last[-1].status_code == 503

    await eventually(refused_now, within=3.0)  # each gateway rereads the flag within 1 s
    assert last[-1].json()["code"] == "INTAKE_PAUSED"

    await at("#intake-toggle").click()
    await expect(at("#intake-state")).to_have_text("running", timeout=WAIT_MS)

    async def accepted_now() -> bool:
        last.append(await api.post("/v1/try-ons", json=body))
        return last[-1].status_code == 202

    await eventually(accepted_now, within=3.0)

    # --- retry the failed try-on from the page: it completes --------------------------------
    await row.locator("button", has_text="Retry").click()
    await expect(at("#flash")).to_contain_text("queued again", timeout=WAIT_MS)
    retried = await wait_terminal(api, refused["id"])
    assert retried["status"] == "completed", retried
    await expect(row).to_have_count(0, timeout=WAIT_MS)

    # --- a refused action shows the API's code and message ----------------------------------
    await at("#lookup-id").fill("to_no_such_tryon")
    await at("#lookup-form button").click()
    await expect(at("#flash")).to_contain_text("TRYON_NOT_FOUND", timeout=WAIT_MS)
    await expect(at("#flash")).to_contain_text("No such try-on.")
    # Looking up the retried try-on shows its stored record, now completed.
    await at("#lookup-id").fill(refused["id"])
    await at("#lookup-form button").click()
    await expect(at("#lookup-actions")).to_contain_text("status completed", timeout=WAIT_MS)
