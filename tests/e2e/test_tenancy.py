"""Apps are tenants, end to end: a real gateway and worker (processes), the emulator, real
webhook receivers on loopback and the test Redis database.

- An erase leaves nothing of the user in Redis (every key scanned, every value read), and an
  erased user's deliveries can no longer be resent or recovered; deliveries expire.
- An operator's retry counts against the app's, the token's and the user's limits again, and
  a later failure gives them back once.
- A deleted app's id is never reused, and its configuration is removed.
- A browser uses only its own user's photos.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import TEST_REDIS_URL, Emulator, assert_error
from tests.e2e.conftest import (
    Gateway,
    eventually,
    keys_cli,
    photo_bytes,
    put_product,
    start_gateway,
    start_tryon,
    upload_photo,
    wait_terminal,
)
from tests.e2e.receiver import Receiver, Reply

ADMIN = "ops_tenancy_admin_token_0123456789abcdef"
# Three days of webhook retries in a few minutes.
SCALE = 1000.0
USER = "erase-me-7Qx"
KEPT = "keep-me-3Wv"
SECRET_NOTE = "meta-9Zk-private"


@pytest.fixture(scope="module")
def stack(emulator_process: Emulator) -> Iterator[Gateway]:
    gw = start_gateway(
        emulator_process,
        WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
        WEBHOOK_TIME_SCALE=str(SCALE),
        WEBHOOK_ATTEMPT_TIMEOUT="2",
        OPS_ADMIN_TOKENS=f"{ADMIN}=tenancy",
        GATEWAY_KEY_CACHE_SECONDS="0",
    )
    yield gw
    gw.stack.stop_all()


@pytest.fixture
async def api(stack: Gateway, emulator: Emulator, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client() as client:
        yield client


@pytest.fixture
async def admin(stack: Gateway, api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client(ADMIN) as client:
        yield client


@pytest.fixture
async def failing_receiver() -> AsyncIterator[Receiver]:
    r = await Receiver(reply=lambda _: Reply(status=500, body=b"down")).start()
    yield r
    await r.stop()


# --- reading every byte Redis holds ----------------------------------------------------------


async def every_value(redis: Redis) -> dict[bytes, bytes]:
    """Each key of the database with every byte of its value (whatever its type) joined."""
    out: dict[bytes, bytes] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        parts: list[bytes] = []
        if kind == "string":
            parts = [await redis.get(key) or b""]
        elif kind == "hash":
            for f, v in (await redis.hgetall(key)).items():  # type: ignore[misc]
                parts += [f, v]
        elif kind == "list":
            parts = await redis.lrange(key, 0, -1)  # type: ignore[misc]
        elif kind == "set":
            parts = list(await redis.smembers(key))  # type: ignore[misc]
        elif kind == "zset":
            parts = [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _, fields in await redis.xrange(key):
                for f, v in fields.items():
                    parts += [f, v]
        elif kind != "none":  # expired between SCAN and TYPE
            raise AssertionError(f"{key!r} has a type this scan does not read: {kind}")
        out[key] = b"\0".join(parts)
    return out


async def traces_of(redis: Redis, *needles: str) -> list[str]:
    """Keys whose name or value holds any of `needles`."""
    found = []
    for key, value in (await every_value(redis)).items():
        for needle in needles:
            if needle.encode() in key or needle.encode() in value:
                found.append(f"{key.decode(errors='replace')} holds {needle!r}")
    return found


async def register(api: httpx.AsyncClient, url: str) -> dict[str, Any]:
    r = await api.post("/v1/webhook-endpoints", json={"url": url})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def user_tryon(
    api: httpx.AsyncClient, user: str, callback: str, key: str | None = None
) -> str:
    image_id = await upload_photo(api, photo_bytes((10, 20, 30)), externalUserId=user)
    r = await api.post(
        "/v1/try-ons",
        json={
            "products": [{"externalId": "tee"}],
            "person": {"image": {"source": {"id": image_id}}},
            "externalUserId": user,
            "metadata": {"note": f"{SECRET_NOTE} for {user}"},
            "callbackUrl": callback,
        },
        headers={"Idempotency-Key": key} if key else {},
    )
    assert r.status_code == 202, r.text
    tryon_id: str = r.json()["id"]
    return tryon_id


# --- item 3: an erase leaves no trace; deliveries expire -------------------------------------


async def test_an_erase_leaves_no_trace_of_the_user_in_redis(
    api: httpx.AsyncClient,
    emulator: Emulator,
    redis: Redis,
    receiver: Receiver,
    failing_receiver: Receiver,
) -> None:
    await put_product(api, emulator)
    await register(api, receiver.url + "/hooks")
    # The user's try-ons: one delivered, one whose callback keeps failing (still retrying when
    # the erase comes), each with metadata and an Idempotency-Key naming the user.
    done = await user_tryon(api, USER, receiver.url + "/cb", key=f"k1-{USER}")
    retrying = await user_tryon(api, USER, failing_receiver.url + "/cb", key=f"k2-{USER}")
    kept = await user_tryon(api, KEPT, receiver.url + "/cb")
    for tryon_id in (done, retrying, kept):
        assert (await wait_terminal(api, tryon_id))["status"] == "completed"
    # The endpoint's tryon.completed for each, and the callback's for the two that succeed (a
    # callback URL gets the terminal event only).
    await receiver.wait_for(5)
    await failing_receiver.wait_for(2)  # the first attempt and a retry: it is being retried
    assert await traces_of(redis, USER, f"{SECRET_NOTE} for {USER}")  # the scan sees them

    r = await api.delete(f"/v1/customers/{USER}")
    assert r.status_code == 204, r.text
    assert await traces_of(redis, USER, f"{SECRET_NOTE} for {USER}") == []
    # Attempts in flight at the erase, and retries due after it, write nothing back.
    await asyncio.sleep(1.0)
    assert await traces_of(redis, USER, f"{SECRET_NOTE} for {USER}") == []
    # The other user of the app keeps everything.
    assert (await api.get(f"/v1/try-ons/{kept}")).status_code == 200
    assert len((await api.get(f"/v1/try-ons/{kept}/deliveries")).json()) >= 2
    assert await traces_of(redis, f"{SECRET_NOTE} for {KEPT}")


async def test_an_erase_reaches_what_the_users_browser_left(
    stack: Gateway, emulator: Emulator, redis: Redis
) -> None:
    made = keys_cli("create", "Erasing", "--id", "erasing")
    async with stack.client(made["secretKey"]) as backend:
        await put_product(backend, emulator)
        r = await backend.post("/v1/sessions", json={"externalUserId": USER})
        token = r.json()["token"]
        async with stack.client(made["publishableKey"]) as browser:
            browser.headers["X-Tryon-Token"] = token
            image_id = await upload_photo(browser)
            tryon = await start_tryon(browser, image_id, metadata={"note": SECRET_NOTE})
            await wait_terminal(browser, tryon["id"])
            # The token, its rate counters and idempotency keys exist; none may name the user
            # after the erase.
            assert await traces_of(redis, USER, SECRET_NOTE)
            assert (await backend.delete(f"/v1/customers/{USER}")).status_code == 204
            assert await traces_of(redis, USER, SECRET_NOTE) == []
            # The user's session tokens are revoked with the rest.
            assert_error(await browser.get(f"/v1/try-ons/{tryon['id']}"), 401, "INVALID_TOKEN")


async def test_an_erased_users_deliveries_cannot_be_resent_or_recovered(
    api: httpx.AsyncClient, emulator: Emulator, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await put_product(api, emulator)
    endpoint = await register(api, receiver.url + "/hooks")
    tryon_id = await user_tryon(api, USER, receiver.url + "/cb")
    await wait_terminal(api, tryon_id)
    await receiver.wait_for(2)
    listed = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json()
    [delivery] = [d for d in listed if d["tryonId"] == tryon_id]
    await asyncio.sleep(0.3)  # every delivery of the try-on made
    sent = len(receiver.received)

    assert (await api.delete(f"/v1/customers/{USER}")).status_code == 204
    resend = await api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/resend"
    )
    assert_error(resend, 404, "DELIVERY_NOT_FOUND")
    ops_resend = await admin.post(f"/ops/api/deliveries/{delivery['id']}/resend")
    assert ops_resend.status_code == 404, ops_resend.text
    recovered = await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/recover", json={"since": 0})
    assert recovered.status_code == 202
    assert recovered.json()["resent"] == []
    assert (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json() == []
    await asyncio.sleep(0.5)
    assert len(receiver.received) == sent  # nothing was sent again


async def test_deliveries_and_their_attempts_expire_after_the_recover_window(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis, receiver: Receiver
) -> None:
    await put_product(api, emulator)
    await register(api, receiver.url)
    tryon_id = await user_tryon(api, USER, receiver.url + "/cb")
    await wait_terminal(api, tryon_id)
    await receiver.wait_for(2)
    await eventually(lambda: _settled(api, tryon_id), within=10.0, every=0.05)
    ids = [d["id"] for d in (await api.get(f"/v1/try-ons/{tryon_id}/deliveries")).json()]
    assert len(ids) >= 2
    week = 7 * 86_400
    # The retry schedule spans 2 days 23 h 35 min; a settled delivery stays resendable and
    # recoverable for 7 days after its last attempt, then goes.
    for key in [
        *(f"tryon:dlv:{i}" for i in ids),
        *(f"tryon:dlv-att:{i}" for i in ids),
        f"tryon:dlv-by-tryon:{tryon_id}",
    ]:
        ttl = await redis.ttl(key)
        assert week - 60 <= ttl <= week, (key, ttl)


async def _settled(api: httpx.AsyncClient, tryon_id: str) -> bool:
    found = (await api.get(f"/v1/try-ons/{tryon_id}/deliveries")).json()
    return len(found) >= 2 and all(d["status"] == "succeeded" for d in found)


# --- item 5: a deleted app leaves nothing a new app could inherit ----------------------------


async def test_a_deleted_apps_id_is_never_reused_and_its_configuration_is_gone(
    stack: Gateway, emulator: Emulator, redis: Redis, receiver: Receiver
) -> None:
    made = keys_cli("create", "Old shop", "--id", "old-shop")
    async with stack.client(made["secretKey"]) as old:
        endpoint = await register(old, receiver.url + "/hooks")
        await put_product(old, emulator, "old-tee")
        assert (await old.get("/v1/callback-secret")).status_code == 200
    signing = keys_cli("signing-key", "old-shop")
    assert signing["kid"]

    assert keys_cli("delete", "old-shop") == {"deleted": "old-shop"}
    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", "keys", "create", "New", "--id", "old-shop"],
        env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert again.returncode == 2, again.stdout
    assert "never reused" in again.stderr
    # Nothing of its configuration is left: endpoints, callback secrets, catalog, keys.
    leftovers = [
        k.decode()
        for k in await redis.keys("*")
        if b"old-shop" in k or endpoint["id"].encode() in k
    ]
    assert leftovers == []
    assert not await traces_of(redis, endpoint["id"], "old-tee", made["app"]["name"])
    async with stack.client(made["secretKey"]) as old:
        assert_error(await old.get("/v1/webhook-endpoints"), 401, "INVALID_API_KEY")
    # Another id is a new app with nothing of the old one's.
    fresh = keys_cli("create", "New shop", "--id", "new-shop")
    async with stack.client(fresh["secretKey"]) as new:
        assert (await new.get("/v1/webhook-endpoints")).json()["items"] == []


# --- item 4: an operator's retry counts against the limits again ----------------------------


async def failed_for_credits(api: httpx.AsyncClient, emulator: Emulator, image_id: str) -> str:
    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 0})
    # Never answered from the result cache, so that its retries reach Genlook (and may fail).
    tryon = await start_tryon(api, image_id, reuse=False)
    failed = await wait_terminal(api, tryon["id"])
    assert failed["error"]["code"] == "INSUFFICIENT_CREDITS", failed
    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 10})
    tryon_id: str = tryon["id"]
    return tryon_id


async def daily_count(redis: Redis, app: str) -> int:
    day = time.strftime("%Y%m%d", time.gmtime())
    return int(await redis.get(f"tryon:q:day:{app}:{day}") or 0)


async def test_a_retry_counts_against_the_apps_daily_cap_and_a_later_failure_gives_it_back(
    stack: Gateway, emulator: Emulator, admin: httpx.AsyncClient, redis: Redis
) -> None:
    made = keys_cli("create", "Capped", "--id", "capped", "--daily-cap", "1")
    async with stack.client(made["secretKey"]) as api:
        await put_product(api, emulator)
        image_id = await upload_photo(api)
        first = await failed_for_credits(api, emulator, image_id)
        assert await daily_count(redis, "capped") == 0  # its failure gave the credit back
        second = await start_tryon(api, image_id)
        assert (await wait_terminal(api, second["id"]))["status"] == "completed"

        # The cap (1) is spent: the retry is refused as a new try-on would be.
        refused = await admin.post(f"/ops/api/tryons/{first}/retry")
        assert_error(refused, 402, "DAILY_CREDIT_CAP_REACHED")
        assert (await api.get(f"/v1/try-ons/{first}")).json()["status"] == "failed"
        assert await daily_count(redis, "capped") == 1

        keys_cli("policy", "capped", "--daily-cap", "2")
        emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 0})
        assert (await admin.post(f"/ops/api/tryons/{first}/retry")).status_code == 202
        failed = await wait_terminal(api, first)
        assert failed["error"]["code"] == "INSUFFICIENT_CREDITS"
        # Counted at the retry, given back once at its failure.
        assert await daily_count(redis, "capped") == 1
        emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 10})
        # Generated afresh: a result reused from the cache would spend none of the cap.
        third = await start_tryon(api, image_id, reuse=False)
        assert (await wait_terminal(api, third["id"]))["status"] == "completed"
        over = await api.post(
            "/v1/try-ons",
            json={"products": [{"externalId": "tee"}],
                  "person": {"image": {"source": {"id": image_id}}}, "reuse": False},
        )  # fmt: skip
        assert_error(over, 402, "DAILY_CREDIT_CAP_REACHED")
    assert emulator.counters()["generationsCreated"] == 2


async def test_a_retry_counts_against_the_end_users_token(
    stack: Gateway, emulator: Emulator, admin: httpx.AsyncClient
) -> None:
    made = keys_cli("create", "Tokens", "--id", "tokens")
    async with stack.client(made["secretKey"]) as backend:
        await put_product(backend, emulator)
        r = await backend.post("/v1/sessions", json={"externalUserId": "u1", "maxTryOns": 1})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
    async with stack.client(made["publishableKey"]) as browser:
        browser.headers["X-Tryon-Token"] = token
        image_id = await upload_photo(browser)
        first = await failed_for_credits(browser, emulator, image_id)
        second = await start_tryon(browser, image_id)  # the token's one try-on, given back
        assert (await wait_terminal(browser, second["id"]))["status"] == "completed"
    refused = await admin.post(f"/ops/api/tryons/{first}/retry")
    assert_error(refused, 402, "TOKEN_QUOTA_EXHAUSTED")
    assert emulator.counters()["generationsCreated"] == 1


# --- a browser uses only its own user's photos -----------------------------------------------


async def test_a_browser_uses_only_photos_its_own_user_uploaded(
    stack: Gateway, emulator: Emulator, redis: Redis
) -> None:
    made = keys_cli("create", "Photos", "--id", "photos")
    tokens = {}
    async with stack.client(made["secretKey"]) as backend:
        await put_product(backend, emulator)
        for user in ("u1", "u2"):
            r = await backend.post("/v1/sessions", json={"externalUserId": user})
            tokens[user] = r.json()["token"]
        unowned = await upload_photo(backend)  # the backend's, for no end user
        for_u1 = await upload_photo(backend, externalUserId="u1")
    async with (
        stack.client(made["publishableKey"]) as u1,
        stack.client(made["publishableKey"]) as u2,
    ):
        u1.headers["X-Tryon-Token"] = tokens["u1"]
        u2.headers["X-Tryon-Token"] = tokens["u2"]
        uploaded_by_u1 = await upload_photo(u1)
        for image_id in (uploaded_by_u1, for_u1, unowned):
            r = await u2.post(
                "/v1/try-ons",
                json={"products": [{"externalId": "tee"}],
                      "person": {"image": {"source": {"id": image_id}}}},
            )  # fmt: skip
            assert_error(r, 404, "IMAGE_NOT_FOUND")
        for image_id in (uploaded_by_u1, for_u1):
            assert (await start_tryon(u1, image_id))["status"] == "queued"
    assert emulator.counters()["generationsCreated"] <= 2
