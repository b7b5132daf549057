"""`/sdk/tryon.js` in a real headless Chromium, from pages on other origins, against a real
gateway, worker, Redis and the emulator.

A "storefront" (a tiny HTTP server on its own loopback port, an allowed origin of the app)
imports the SDK from the gateway and drives it; a "stranger" page (another port, not allowed)
is refused by CORS before anything reaches the API. Everything asserted about the browser is
read from the page (what fetch and the SDK resolved or rejected with, the progress the page
saw, the requests Chromium sent); what the gateway did is checked with the app's secret key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from service.keys import Keys

from tests.conftest import Emulator
from tests.e2e.browser_stack import (
    KEY_CACHE_SECONDS,
    BrowserApp,
    chromium,
    create_browser_app,
    needs_chromium,
    static_site,
)
from tests.e2e.conftest import (
    Gateway,
    eventually,
    photo_bytes,
    put_product,
    stack_fixture,
    tryon_doc,
)

pytestmark = needs_chromium

APP = "shop"
USER = "shopper-1"


# The result cache off: these tests follow each try-on over the transports (stream, long-poll,
# fallback), and a repeat of the same photo and product would complete at once from the cache.
gateway = stack_fixture(GATEWAY_KEY_CACHE_SECONDS=KEY_CACHE_SECONDS, RESULTS_REUSE_TTL="0")


@pytest.fixture(scope="module")
def storefront() -> Iterator[str]:
    with static_site() as origin:
        yield origin


@pytest.fixture(scope="module")
def stranger() -> Iterator[str]:
    with static_site() as origin:
        yield origin


@pytest.fixture
async def shop(
    gateway: Gateway, storefront: str, emulator: Emulator, redis: Redis
) -> AsyncIterator[dict[str, Any]]:
    """The app (the storefront's origin allowed), a product, and an end-user token minted by
    "the merchant's backend" with the secret key: what a page is given."""
    app = await create_browser_app(redis, APP, storefront)
    async with gateway.client(app.secret_key) as backend:
        await put_product(backend, emulator)
        # Exactly what the page gets (handed to page.evaluate), never the secret key.
        yield {"gw": gateway.url, "pk": app.publishable_key, "token": await mint(backend)}


async def mint(backend: httpx.AsyncClient, **extra: Any) -> str:
    r = await backend.post("/v1/sessions", json={"externalUserId": USER, **extra})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def open_page(browser: Any, origin: str, gw: str) -> Any:
    """A page of `origin` with the SDK imported from the gateway (as `window.sdk`) and a
    generated JPEG at hand (`window.photo`)."""
    page = await browser.new_page()
    page.requested = []
    page.sent = []  # (method, url, body) of each API request
    page.answers = []  # (method, status) of each API answer
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("request", lambda r: page.sent.append((r.method, r.url, r.post_data)))
    page.on("response", lambda r: page.answers.append((r.request.method, r.status)))
    await page.goto(origin)
    await page.evaluate(
        """async ({ gw, jpeg }) => {
            window.sdk = await import(`${gw}/sdk/tryon.js`);
            window.photo = new File([new Uint8Array(jpeg)], "me.jpg", { type: "image/jpeg" });
        }""",
        {"gw": gw, "jpeg": list(photo_bytes(size=(320, 400)))},
    )
    return page


# The page's side of a try-on: the SDK's whole flow, with what it reported, as plain data.
RUN_TRYON = """async ({ gw, pk, token, transport }) => {
    const { TryOnClient, TryOnError } = window.sdk;
    const client = new TryOnClient({ baseUrl: gw, publishableKey: pk, token, transport });
    const progress = [];
    try {
        const done = await client.tryOn({
            productId: "tee",
            photo: window.photo,
            onProgress: ({ status, tryOn }) => progress.push([status, tryOn?.id ?? null]),
        });
        return { ok: true, progress, tryOn: done };
    } catch (e) {
        return { ok: false, progress, error: { name: e.name, code: e.code, message: e.message,
                 isTryOnError: e instanceof TryOnError } };
    }
}"""


async def test_a_page_on_another_origin_is_refused_by_cors(
    browser: Any,
    shop: dict[str, Any],
    stranger: str,
    storefront: str,
    emulator: Emulator,
    redis: Redis,
) -> None:
    page = await open_page(browser, stranger, shop["gw"])
    outcome = await page.evaluate(
        """async ({ gw, pk, token }) => {
            const out = {};
            try {
                await fetch(`${gw}/v1/try-ons`, {
                    method: "POST",
                    headers: { Authorization: `Bearer ${pk}`, "X-Tryon-Token": token,
                               "Content-Type": "application/json" },
                    body: JSON.stringify({ products: [{ externalId: "tee" }],
                                           person: { image: { source: { id: "img_x" } } } }),
                });
                out.fetch = "resolved";
            } catch (e) {
                out.fetch = e.constructor.name;
            }
            const client = new window.sdk.TryOnClient({ baseUrl: gw, publishableKey: pk, token });
            try {
                await client.tryOn({ productId: "tee", photo: window.photo });
                out.sdk = "resolved";
            } catch (e) {
                out.sdk = { isTryOnError: e instanceof window.sdk.TryOnError, code: e.code,
                            status: e.status, cause: e.cause?.constructor.name };
            }
            return out;
        }""",
        shop,
    )
    assert outcome["fetch"] == "TypeError"
    assert outcome["sdk"] == {
        "isTryOnError": True,
        "code": "NETWORK_ERROR",
        "status": 0,
        "cause": "TypeError",
    }
    # Nothing reached the API: no try-on, no photo, nothing upstream.
    async with httpx.AsyncClient(base_url=shop["gw"]) as client:
        preflight = await client.options(
            "/v1/try-ons",
            headers={
                "Origin": stranger,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,x-tryon-token",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers
    assert await redis.keys("tryon:t:*") == []
    assert emulator.control("GET", "generations")["items"] == []
    assert emulator.counters()["uploads"] == 0

    # The same calls from the app's own storefront go through.
    allowed = await open_page(browser, storefront, shop["gw"])
    result = await allowed.evaluate(RUN_TRYON, {**shop, "transport": "auto"})
    assert result["ok"], result
    assert result["tryOn"]["status"] == "completed"


async def test_typed_errors_and_token_refresh(
    browser: Any, gateway: Gateway, storefront: str, redis: Redis, emulator: Emulator
) -> None:
    from service.access.models import Policy
    from service.access.registry import AppRegistry
    from service.keys import Keys

    app: BrowserApp = await create_browser_app(redis, APP, storefront)
    # A tight per-user rate (4 a minute) so the 429 and its Retry-After, read across origins,
    # show up; 10 tries cover a minute boundary falling in the middle.
    await AppRegistry(redis, Keys()).set_policy(
        APP, Policy(allowed_origins=(storefront,), user_rate_per_minute=4)
    )
    async with gateway.client(app.secret_key) as backend:
        token = await mint(backend)
    page = await open_page(browser, storefront, gateway.url)
    outcome = await page.evaluate(
        """async ({ gw, pk, token }) => {
            const { TryOnClient, TryOnError } = window.sdk;
            const describe = (e) => ({ isTryOnError: e instanceof TryOnError, code: e.code,
                status: e.status, retryAfter: e.retryAfter, retryable: e.retryable,
                hasMessage: typeof e.message === "string" && e.message.length > 0 });
            const out = {};
            const forged = new TryOnClient({ baseUrl: gw, publishableKey: pk, token: "ut_forged" });
            try { await forged.uploadPhoto(window.photo); out.forged = "resolved"; }
            catch (e) { out.forged = describe(e); }
            const anonymous = new TryOnClient({ baseUrl: gw, publishableKey: pk });
            try { await anonymous.uploadPhoto(window.photo); out.anonymous = "resolved"; }
            catch (e) { out.anonymous = describe(e); }

            // getToken: a stale token first; rejected, a fresh one is fetched and the call resent.
            const reasons = [];
            const tokens = ["ut_stale", token];
            const refreshing = new TryOnClient({ baseUrl: gw, publishableKey: pk,
                getToken: async ({ reason }) => { reasons.push(reason); return tokens.shift(); } });
            const uploaded = await refreshing.uploadPhoto(window.photo);
            out.refreshed = { reasons, imageId: typeof uploaded.id };

            try { await refreshing.getTryOn("to_missing"); out.missing = "resolved"; }
            catch (e) { out.missing = describe(e); }
            out.limited = null;
            for (let i = 0; i < 10 && out.limited === null; i++) {
                try { await refreshing.getTryOn("to_missing"); }
                catch (e) { if (e.status === 429) out.limited = describe(e); }
            }
            return out;
        }""",
        {"gw": gateway.url, "pk": app.publishable_key, "token": token},
    )
    assert outcome["forged"] == {
        "isTryOnError": True,
        "code": "INVALID_TOKEN",
        "status": 401,
        "retryAfter": None,
        "retryable": False,
        "hasMessage": True,
    }
    assert outcome["anonymous"]["code"] == "TOKEN_REQUIRED"
    assert outcome["anonymous"]["status"] == 401
    assert outcome["refreshed"] == {"reasons": ["initial", "rejected"], "imageId": "string"}
    assert outcome["missing"]["code"] == "TRYON_NOT_FOUND"
    assert outcome["missing"]["status"] == 404
    limited = outcome["limited"]
    assert limited is not None, outcome
    assert limited["code"] == "RATE_LIMITED"
    assert limited["retryable"] is True
    assert limited["retryAfter"] > 0


@pytest.mark.parametrize("proxy", ["drops", "buffers"])
async def test_polling_fallback_when_streaming_fails(
    browser: Any, shop: dict[str, Any], storefront: str, proxy: str
) -> None:
    page = await open_page(browser, storefront, shop["gw"])

    async def broken_stream(route: Any) -> None:
        if proxy == "drops":
            await route.abort("connectionreset")
        else:  # a proxy that answers with its own page instead of the stream
            await route.fulfill(
                status=200,
                content_type="text/html",
                body="<html>buffered</html>",
                headers={"Access-Control-Allow-Origin": storefront},
            )

    await page.route("**/v1/try-ons/*/events", broken_stream)
    result = await page.evaluate(RUN_TRYON, {**shop, "transport": "auto"})
    assert result["ok"], result
    assert result["tryOn"]["status"] == "completed"
    assert result["tryOn"]["result"]["imageUrl"]
    tryon_id = result["tryOn"]["id"]
    streamed = [u for u in page.requested if u.endswith(f"/v1/try-ons/{tryon_id}/events")]
    polled = [u for u in page.requested if f"/v1/try-ons/{tryon_id}?wait=25" in u]
    assert len(streamed) == 1
    assert polled
    statuses = [s for s, _ in result["progress"]]
    assert statuses[:2] == ["uploading", "queued"]
    assert statuses[-1] == "completed"

    # Streaming only: the same failure is reported, typed, instead of falling back.
    only_sse = await page.evaluate(RUN_TRYON, {**shop, "transport": "sse"})
    assert not only_sse["ok"]
    assert only_sse["error"]["code"] == "STREAM_UNAVAILABLE"
    assert only_sse["error"]["isTryOnError"]


async def test_progress_is_reported_in_order_over_the_stream(
    browser: Any, shop: dict[str, Any], storefront: str, emulator: Emulator
) -> None:
    # Genlook takes a second to answer: the try-on is seen between queued and completed.
    emulator.control("POST", "faults", json={"endpoint": "create_try_on_sync", "latency": 1.0})
    page = await open_page(browser, storefront, shop["gw"])
    result = await page.evaluate(RUN_TRYON, {**shop, "transport": "sse"})
    assert result["ok"], result
    statuses = [s for s, _ in result["progress"]]
    order = ["uploading", "queued", "submitting", "running", "completed"]
    assert statuses[:2] == ["uploading", "queued"]
    assert statuses[-1] == "completed"
    assert len(statuses) >= 4, statuses  # at least one state in between, from the stream
    assert statuses == sorted(statuses, key=order.index)
    assert len(set(statuses)) == len(statuses)
    # Every report after the upload carries the same try-on.
    assert {i for _, i in result["progress"][1:]} == {result["tryOn"]["id"]}
    assert not [u for u in page.requested if "?wait=" in u]


async def test_abort_stops_waiting_at_once(
    browser: Any, shop: dict[str, Any], storefront: str, emulator: Emulator, redis: Redis
) -> None:
    # Genlook holds the try-on for 5 s; the page gives up while the stream is open.
    emulator.control("POST", "faults", json={"endpoint": "create_try_on_sync", "latency": 5.0})
    page = await open_page(browser, storefront, shop["gw"])
    outcome = await page.evaluate(
        """async ({ gw, pk, token }) => {
            const client = new window.sdk.TryOnClient({ baseUrl: gw, publishableKey: pk, token });
            const control = new AbortController();
            let abortedAt = null;
            const abort = () => { abortedAt = performance.now(); control.abort(); };
            const seen = [];
            try {
                await client.tryOn({ productId: "tee", photo: window.photo, signal: control.signal,
                    onProgress: ({ status }) => {
                        seen.push(status);
                        if (status === "queued") setTimeout(abort, 500);
                    } });
                return { outcome: "resolved", seen };
            } catch (e) {
                return { outcome: e.name, seen, afterAbortMs: performance.now() - abortedAt };
            }
        }""",
        shop,
    )
    assert outcome["outcome"] == "AbortError", outcome
    assert outcome["seen"][-1] != "completed"
    assert outcome["afterAbortMs"] < 500
    streamed = [u for u in page.requested if u.endswith("/events")]
    assert len(streamed) == 1
    # Sent upstream before the abort: the page's cancel is refused (409) and the try-on
    # follows through server-side, its credit spent on a result.
    [key] = await redis.keys(Keys().tryon("*"))
    record = await tryon_doc(redis, key.decode().removeprefix(Keys().tryon("")))
    assert await eventually_status(redis, record["id"], "completed", within=15)
    await answered(page, ("DELETE", 409))


# --- deadlines and cancel ----------------------------------------------------------------


async def answered(page: Any, answer: tuple[str, int]) -> None:
    """Wait for the page to see `answer` (method, status): the browser's response event reaches
    the test after the gateway has written what the answer reports."""

    async def seen() -> bool:
        return answer in page.answers

    await eventually(seen, what=f"the page never saw {answer}: {page.answers}")


async def eventually_status(redis: Redis, tryon_id: str, status: str, within: float) -> bool:
    """Whether the try-on reaches `status` within `within` seconds (read from Redis)."""
    until = time.monotonic() + within
    while time.monotonic() < until:
        if (await tryon_doc(redis, tryon_id))["status"] == status:
            return True
        await asyncio.sleep(0.1)
    return False


# The page gives up on a try-on: after `abortAfterMs` from "queued" by its own AbortController,
# or by `timeout`. What it saw and the body of its create request, as plain data.
GIVE_UP = """async ({ gw, pk, token, timeout, abortAfterMs }) => {
    const client = new window.sdk.TryOnClient({ baseUrl: gw, publishableKey: pk, token });
    const control = new AbortController();
    const seen = [];
    let tryOnId = null;
    try {
        await client.tryOn({ productId: "tee", photo: window.photo, signal: control.signal, timeout,
            onProgress: ({ status, tryOn }) => {
                seen.push(status);
                tryOnId = tryOn?.id ?? tryOnId;
                if (status === "queued" && abortAfterMs) {
                    setTimeout(() => control.abort(), abortAfterMs);
                }
            } });
        return { outcome: "resolved", seen, tryOnId };
    } catch (e) {
        return { outcome: e.name, code: e.code ?? null, seen, tryOnId };
    }
}"""


def pause_upstream(redis: Redis, seconds: float) -> Any:
    """The fleet's upstream budget paused (as after a 429): nothing is sent upstream meanwhile,
    so a try-on stays not yet sent."""
    return redis.set(Keys().budget_pause, "1", px=int(seconds * 1000))


async def test_abort_cancels_a_tryon_not_yet_sent(
    browser: Any, shop: dict[str, Any], storefront: str, emulator: Emulator, redis: Redis
) -> None:
    page = await open_page(browser, storefront, shop["gw"])
    # Paused once the page is open (a loaded machine may take seconds to open it): the upload,
    # the create, the abort after 300 ms and its cancel all fall within the pause.
    await pause_upstream(redis, 6.0)
    outcome = await page.evaluate(GIVE_UP, {**shop, "timeout": 20_000, "abortAfterMs": 300})
    assert outcome["outcome"] == "AbortError", outcome
    tryon_id = outcome["tryOnId"]
    # The page's timeout went along as the try-on's deadline: whole seconds left after the
    # photo upload, rounded down.
    [created] = [body for method, url, body in page.sent if method == "POST" and "try-ons" in url]
    assert 18 <= json.loads(created)["deadlineSeconds"] <= 20
    doc = await tryon_doc(redis, tryon_id)
    assert 18 <= doc["send_by"] - doc["created_at"] <= 20
    # Its cancel (sent in the background) ended it; after the budget came back the worker sent
    # nothing for it.
    assert await eventually_status(redis, tryon_id, "canceled", within=5)
    await answered(page, ("DELETE", 200))
    await asyncio.sleep(max(0.0, await redis.pttl(Keys().budget_pause) / 1000) + 1.5)
    assert emulator.counters()["generationsCreated"] == 0
    assert (await tryon_doc(redis, tryon_id))["status"] == "canceled"


async def test_the_pages_timeout_ends_its_wait_while_a_sent_tryon_follows_through(
    browser: Any, shop: dict[str, Any], storefront: str, emulator: Emulator, redis: Redis
) -> None:
    """Sent upstream before the page's timeout, generating past it: the page stops waiting
    at its timeout (TimeoutError); the gateway, whose deadline stops only what is not sent yet,
    completes the try-on whose credit is spent (its cancel refused, 409)."""
    emulator.control("POST", "faults", json={"endpoint": "create_try_on_sync", "latency": 6.0})
    page = await open_page(browser, storefront, shop["gw"])
    outcome = await page.evaluate(GIVE_UP, {**shop, "timeout": 3_000, "abortAfterMs": 0})
    assert outcome["outcome"] == "TimeoutError", outcome
    assert await eventually_status(redis, outcome["tryOnId"], "completed", within=15)
    await answered(page, ("DELETE", 409))


async def test_a_lost_cancel_still_spends_nothing_past_the_timeout(
    browser: Any, shop: dict[str, Any], storefront: str, emulator: Emulator, redis: Redis
) -> None:
    page = await open_page(browser, storefront, shop["gw"])
    await pause_upstream(redis, 6.0)  # past the page's 2 s timeout, however long it took to open

    async def lose_cancels(route: Any) -> None:
        if route.request.method == "DELETE":
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/v1/try-ons/*", lose_cancels)
    # The page gives up (its abort) before its timeout; its cancel is lost on the way.
    outcome = await page.evaluate(GIVE_UP, {**shop, "timeout": 2_000, "abortAfterMs": 300})
    assert outcome["outcome"] == "AbortError", outcome
    # The gateway ends it by the deadline the page sent, without sending it upstream (nor its
    # photo: that wait for the paused budget ends at the deadline too).
    assert await eventually_status(redis, outcome["tryOnId"], "failed", within=10)
    doc = await tryon_doc(redis, outcome["tryOnId"])
    assert doc["error"]["code"] == "DEADLINE_EXCEEDED"
    assert "create_started_at" not in doc
    assert emulator.counters()["generationsCreated"] == 0
    assert [a for a in page.answers if a[0] == "DELETE"] == []  # the cancel never arrived
