"""Several Genlook accounts behind one gateway (docs/accounts.md), in process: the worker's
runner on real Redis, the gateway app accepting, and two emulators over HTTP, one per account.
Account `default` is the session's emulator (GENLOOK_API_KEY); account `b` a second emulator
with its own key, stored encrypted. App `shop` sends through the pool [default, b].

What each test proves is read from the emulators' own counters: where creates went, how many
generations each made, how many credits each spent."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from redis.asyncio import Redis
from service.accounts.crypto import KeyBox, new_master_key
from service.accounts.models import KEY_REFUSED, OUT_OF_CREDITS
from service.genlook.client import Priority
from service.namespacing import upstream_account
from workers.jobs import refresh_credits

from tests.conftest import (
    SECOND_ACCOUNT_KEY,
    STORED_ONLY_KEY,
    TEST_REDIS_URL,
    Emulator,
    run_emulator,
)
from tests.integration.runner.conftest import APP, Harness, error_code

MASTER_KEY = new_master_key()
ADMIN = "ops_admin_token_accounts_0123456789"


@pytest.fixture(scope="module")
def second_emulator_process() -> Iterator[Emulator]:
    with run_emulator(SECOND_ACCOUNT_KEY) as emulator:
        yield emulator


@pytest.fixture
def second(second_emulator_process: Emulator) -> Emulator:
    second_emulator_process.reset()
    return second_emulator_process


@pytest.fixture
def harness_env() -> dict[str, str]:
    return {"GATEWAY_MASTER_KEY": MASTER_KEY, "OPS_ADMIN_TOKENS": ADMIN}


@pytest.fixture
async def pooled(harness: Harness, second: Emulator) -> Harness:
    """App `shop` on the pool [default, b]."""
    registry = harness.res.accounts.registry
    await registry.create("b", SECOND_ACCOUNT_KEY, base_url=second.base_url)
    await registry.set_pool(APP, ["default", "b"])
    return harness


def creates(emulator: Emulator) -> int:
    requests = emulator.counters()["requests"]
    return int(requests.get("create_try_on_sync", 0) + requests.get("create_try_on", 0))


def spent(emulator: Emulator) -> tuple[int, int]:
    """(generations created, credits spent net of refunds)."""
    c = emulator.counters()
    return c["generationsCreated"], c["creditsSpent"] - c["creditsRefunded"]


# --- failover ----------------------------------------------------------------------------------


async def test_an_account_out_of_credits_fails_over_with_no_second_credit(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    h.emulator.reset(credits=0)
    tryon_id = await h.tryon()

    record = await h.drive(tryon_id)
    assert record.status == "completed", record.error
    assert record.account == "b"
    # The 402 came before any generation: nothing made nor spent on the default account.
    assert (creates(h.emulator), *spent(h.emulator)) == (1, 0, 0)
    assert (creates(second), *spent(second)) == (1, 1, 1)
    status = await h.res.accounts.registry.status("default")
    assert status.unavailable == OUT_OF_CREDITS
    # The next try-on goes straight to `b`: the default account is out of the pool.
    record = await h.drive(await h.accept(await h.upload_photo()))
    assert (record.status, record.account) == ("completed", "b")
    assert creates(h.emulator) == 1
    assert spent(second) == (2, 2)


async def test_a_revoked_key_fails_over_with_no_second_credit(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    tryon_id = await h.tryon()
    h.fault(status=401, code="INVALID_API_KEY", count=1)

    record = await h.drive(tryon_id)
    assert (record.status, record.account) == ("completed", "b")
    assert (creates(h.emulator), *spent(h.emulator)) == (1, 0, 0)
    assert spent(second) == (1, 1)
    assert (await h.res.accounts.registry.status("default")).unavailable == KEY_REFUSED


@pytest.mark.parametrize("mode", ["drop", "drop_after"])
async def test_an_unknown_outcome_never_fails_over(
    pooled: Harness, second: Emulator, mode: str
) -> None:
    h = pooled
    tryon_id = await h.tryon()
    h.fault(mode=mode)

    record = await h.drive(tryon_id)
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert record.account == "default"
    assert creates(second) == 0  # never created again elsewhere
    assert (await h.res.accounts.registry.status("default")).usable


async def test_a_create_marker_left_by_a_killed_worker_never_fails_over(
    pooled: Harness, second: Emulator
) -> None:
    """A worker killed after sending the create: even with its account out of the pool now,
    the try-on is not sent to another account (the first one may have made it)."""
    h = pooled
    tryon_id = await h.tryon()

    def sent(r: Any) -> Any:
        r.status, r.account, r.create_started_at = "submitting", "default", 1.0
        return r

    await h.res.store.update(tryon_id, sent)
    await h.res.accounts.take_out("default", OUT_OF_CREDITS)
    record = await h.drive(tryon_id)
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert creates(second) == 0


async def test_with_every_account_out_the_upstreams_answer_is_reported(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    h.emulator.reset(credits=0)
    second.reset(credits=0)
    record = await h.drive(await h.tryon())
    assert error_code(record) == "INSUFFICIENT_CREDITS"
    assert record.create_started_at is None  # nothing spent: an operator may retry it
    assert spent(h.emulator) == spent(second) == (0, 0)


async def test_an_account_comes_back_when_its_balance_does(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    h.emulator.reset(credits=0)
    await h.drive(await h.tryon())
    accounts = h.res.accounts
    assert not await accounts.usable("default")

    # Still empty: the sweep's balance read keeps it out.
    await refresh_credits(h.res)
    assert not await accounts.usable("default")
    h.emulator.control("PUT", f"accounts/{h.emulator.api_key}", json={"credits": 5})
    await h.res.redis.delete(h.res.keys.balance_refresh_lock("default"))
    await refresh_credits(h.res)
    status = await accounts.registry.status("default")
    assert (status.usable, status.balance) == (True, 5)
    assert (await accounts.registry.status("b")).balance == 999  # the failed-over try-on

    record = await h.drive(await h.accept(await h.upload_photo()))
    assert (record.status, record.account) == ("completed", "default")
    assert spent(h.emulator) == (1, 1)


async def test_a_disabled_account_is_skipped_and_a_pool_of_disabled_ones_refuses(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    registry = h.res.accounts.registry
    await registry.set_disabled("default", True)
    record = await h.drive(await h.tryon())
    assert (record.status, record.account) == ("completed", "b")
    assert creates(h.emulator) == 0
    await registry.set_disabled("b", True)
    record = await h.drive(await h.accept(await h.upload_photo()))
    assert error_code(record) == "NO_UPSTREAM_ACCOUNT"
    assert creates(second) == 1


# --- per account: budget, caches, polls ---------------------------------------------------------


async def test_each_account_has_its_own_budget_and_pause(pooled: Harness) -> None:
    accounts = pooled.res.accounts
    a = (await accounts.upstream("default")).budget
    b = (await accounts.upstream("b")).budget
    # Draining one bucket leaves the other's cells.
    while await b.try_acquire(Priority.START) == 0.0:
        pass
    assert await a.try_acquire(Priority.START) == 0.0
    # A 429 on one key pauses only that key.
    await a.pause(5.0)
    assert await a.try_acquire(Priority.START) > 1.0
    assert await a.paused_for() > 1.0
    assert await b.paused_for() == 0.0


@pytest.mark.parametrize(
    "harness_env",
    [
        {
            "GATEWAY_MASTER_KEY": MASTER_KEY,
            "OPS_ADMIN_TOKENS": ADMIN,
            "GENLOOK_WAIT_STRATEGY": "poll",
        }
    ],
)
async def test_a_try_on_is_polled_and_copied_through_the_account_it_was_created_on(
    pooled: Harness, second: Emulator
) -> None:
    """`poll` strategy: the generation lives in `b`; every status read goes there."""
    h = pooled
    await h.res.accounts.registry.set_pool(APP, ["b"])
    record = await h.drive(await h.tryon(), attempts=50)
    assert (record.status, record.account) == ("completed", "b")
    reads = second.counters()["requests"]
    assert reads.get("get_generation", 0) >= 1
    assert h.counters()["requests"].get("get_generation", 0) == 0


async def test_the_caches_are_per_account(pooled: Harness, second: Emulator) -> None:
    """A product and photo known to the default account are uploaded/upserted again in `b`."""
    h = pooled
    await h.res.accounts.registry.set_pool(APP, ["default"])
    first = await h.drive(await h.tryon())
    assert first.account == "default"
    await h.res.accounts.registry.set_pool(APP, ["b"])
    image_id = await h.upload_photo()
    record = await h.drive(await h.accept(image_id))
    assert record.account == "b"
    requests = second.counters()["requests"]
    assert requests.get("upload_image", 0) == 1
    # Sent inline to `b` (its cache knew nothing), then known there.
    assert spent(second) == (1, 1)
    b_digest = (await h.res.accounts.upstream("b")).digest
    assert await h.res.products.known(b_digest, f"{APP}:tee", _fingerprint_of_tee(h))


def _fingerprint_of_tee(h: Harness) -> str:
    from service.products import fingerprint
    from service.tryons.models import ProductDef

    url = f"{h.emulator.root}/_emulator/assets/red-tee.png"
    return fingerprint(ProductDef(external_id="tee", title="Red tee", image_urls=[url]))


async def test_the_default_account_keeps_the_caches_of_an_existing_deployment(
    harness: Harness,
) -> None:
    """Upgrade in place: the implicit account's digest is today's, so cached products and
    photos keep working, and the budget keeps its Redis key."""
    res = harness.res
    default = await res.accounts.upstream("default")
    assert default.digest == upstream_account(res.settings.genlook)
    assert default.client is res.genlook
    assert res.keys.account_budget("default") == res.keys.budget
    assert await res.accounts.registry.pool("any-app") == ["default"]
    record = await harness.drive(await harness.tryon())
    assert (record.status, record.account) == ("completed", "default")


# --- erase --------------------------------------------------------------------------------------


async def test_the_erase_reaches_every_account_the_app_used(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    h.emulator.reset(credits=0)
    image_id = await h.upload_photo(externalUserId="u1")
    await h.put_product()
    await h.drive(await h.accept(image_id, externalUserId="u1"))
    r = await h.gateway.delete("/v1/customers/u1")
    assert r.status_code in (200, 204), r.text
    for emulator in (h.emulator, second):
        assert emulator.counters()["requests"].get("delete_customer", 0) == 1


@pytest.mark.parametrize("how", ["key-refused", "disabled"])
async def test_an_account_out_for_a_refused_key_or_disabled_does_not_block_the_erase(
    harness: Harness, second: Emulator, how: str
) -> None:
    """Its refusal would make every erase answer 502 for good: it is skipped, the healthy
    account is still asked and the local records go."""
    h = harness
    registry = h.res.accounts.registry
    # A key the second emulator refuses: its delete_customer would raise.
    await registry.create("b", "gk_live_refused_0123456789abcdef", base_url=second.base_url)
    await registry.set_pool(APP, ["default", "b"])
    await registry.note_used(APP, "b")
    if how == "disabled":
        await registry.set_disabled("b", True)
    else:
        await h.res.accounts.take_out("b", KEY_REFUSED)
    image_id = await h.upload_photo(externalUserId="u1")
    await h.put_product()
    record = await h.drive(await h.accept(image_id, externalUserId="u1"))
    r = await h.gateway.delete("/v1/customers/u1")
    assert r.status_code == 204, r.text
    assert h.emulator.counters()["requests"].get("delete_customer", 0) == 1
    assert second.counters()["requests"].get("delete_customer", 0) == 0
    assert await h.res.store.get(record.id) is None


# --- the key is never readable back ------------------------------------------------------------


async def _redis_holds(redis: Redis, secret: bytes) -> list[str]:
    found = []
    async for key in redis.scan_iter(count=500):
        dumped = await redis.dump(key)
        if dumped is not None and secret in dumped:
            found.append(key.decode())
    return found


async def test_a_key_is_never_readable_back_from_the_ops_api_nor_redis(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    auth = {"Authorization": f"Bearer {ADMIN}"}
    r = await h.gateway.post(
        "/ops/api/accounts",
        json={"id": "c", "apiKey": STORED_ONLY_KEY, "baseUrl": second.base_url, "rateLimit": 50},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assert r.json()["keyHint"] == STORED_ONLY_KEY[:8] + "…"
    assert STORED_ONLY_KEY not in r.text
    for path in ("/ops/api/accounts", "/ops/api/accounts/c", "/ops/api/accounts/b"):
        r = await h.gateway.get(path, headers=auth)
        assert r.status_code == 200, r.text
        assert STORED_ONLY_KEY not in r.text
        assert SECOND_ACCOUNT_KEY not in r.text
    await h.drive(await h.tryon())
    for secret in (STORED_ONLY_KEY, SECOND_ACCOUNT_KEY, h.emulator.api_key):
        assert await _redis_holds(h.res.redis, secret.encode()) == []
    # What Redis holds is ciphertext the master key opens.
    config = await h.res.accounts.registry.get("c")
    assert KeyBox(MASTER_KEY).open(config.sealed_key) == STORED_ONLY_KEY


async def test_the_ops_api_refuses_bad_account_requests_with_stable_codes(
    pooled: Harness,
) -> None:
    h = pooled
    auth = {"Authorization": f"Bearer {ADMIN}"}
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/ops/api/accounts", {"id": "b", "apiKey": "gk_x"}, 409, "ACCOUNT_EXISTS"),
        ("POST", "/ops/api/accounts", {"id": "default", "apiKey": "gk_x"}, 409, "ACCOUNT_EXISTS"),
        ("POST", "/ops/api/accounts", {"id": "a:b", "apiKey": "gk_x"}, 400, "VALIDATION_FAILED"),
        ("POST", "/ops/api/accounts", {"id": "d", "apiKey": "x y"}, 400, "VALIDATION_FAILED"),
        ("POST", "/ops/api/accounts", {"id": "d"}, 400, "VALIDATION_FAILED"),
        (
            "POST",
            "/ops/api/accounts",
            {"id": "d", "apiKey": "gk_x", "baseUrl": "ftp://x"},
            400,
            "VALIDATION_FAILED",
        ),
        ("PATCH", "/ops/api/accounts/default", {"rateLimit": 5}, 409, "ACCOUNT_READ_ONLY"),
        ("PATCH", "/ops/api/accounts/nope", {"rateLimit": 5}, 404, "ACCOUNT_NOT_FOUND"),
        ("DELETE", "/ops/api/accounts/default", None, 409, "ACCOUNT_READ_ONLY"),
        ("PUT", "/ops/api/apps/shop/accounts", {"accounts": ["nope"]}, 404, "ACCOUNT_NOT_FOUND"),
        ("PUT", "/ops/api/apps/shop/accounts", {"accounts": ["b", "b"]}, 400, "VALIDATION_FAILED"),
    ]
    for method, path, body, status, code in cases:
        r = await h.gateway.request(method, path, json=body, headers=auth)
        assert (r.status_code, r.json()["code"]) == (status, code), (method, path, r.text)
    assert await h.res.accounts.registry.pool(APP) == ["default", "b"]  # nothing changed
    r = await h.gateway.get("/ops/api/accounts", headers={"Authorization": "Bearer sk_nope"})
    assert r.status_code in (401, 403)


async def test_the_ops_api_updates_pools_and_a_new_key_brings_an_account_back(
    pooled: Harness, second: Emulator
) -> None:
    h = pooled
    auth = {"Authorization": f"Bearer {ADMIN}"}
    await h.res.accounts.take_out("b", KEY_REFUSED)
    r = await h.gateway.patch(
        "/ops/api/accounts/b", json={"apiKey": SECOND_ACCOUNT_KEY, "rateLimit": 60}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert (r.json()["available"], r.json()["rateLimit"]) == (True, 60)
    r = await h.gateway.put("/ops/api/apps/shop/accounts", json={"accounts": ["b"]}, headers=auth)
    assert r.json() == {"app": "shop", "accounts": ["b"]}
    r = await h.gateway.delete("/ops/api/accounts/b", headers=auth)
    assert r.status_code == 204
    r = await h.gateway.get("/ops/api/apps/shop/accounts", headers=auth)
    assert r.json()["accounts"] == ["default"]


# --- the CLI ----------------------------------------------------------------------------------


def _cli(*args: str, stdin: str = "", master: str = MASTER_KEY) -> subprocess.CompletedProcess[str]:
    env = {"REDIS_URL": TEST_REDIS_URL, "GATEWAY_MASTER_KEY": master, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "accounts", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_the_cli_manages_accounts_and_never_prints_a_key(
    redis: Redis, second: Emulator
) -> None:
    made = await asyncio.to_thread(
        _cli, "create", "c", "--base-url", second.base_url, "--json", stdin=STORED_ONLY_KEY + "\n"
    )
    assert made.returncode == 0, made.stderr
    listed = await asyncio.to_thread(_cli, "list", "--json")
    pooled = await asyncio.to_thread(_cli, "pool", "shop", "c", "default", "--json")
    disabled = await asyncio.to_thread(_cli, "disable", "c", "--json")
    plain = await asyncio.to_thread(_cli, "list")
    duplicate = await asyncio.to_thread(_cli, "create", "c", stdin="gk_other\n")
    for out in (made, listed, pooled, disabled, plain, duplicate):
        assert STORED_ONLY_KEY not in out.stdout + out.stderr
    ids = [a["id"] for a in json.loads(listed.stdout)]
    assert ids == ["default", "c"]
    assert '"accounts":["c","default"]' in pooled.stdout
    assert '"disabled":true' in disabled.stdout
    assert (duplicate.returncode, "ACCOUNT_EXISTS" in duplicate.stderr) == (2, True)
    # Rotation: a new master key first, every stored key sealed again, the old one dropped.
    newer = new_master_key()
    rotated = await asyncio.to_thread(_cli, "rotate-master-key", master=f"{newer},{MASTER_KEY}")
    assert rotated.returncode == 0, rotated.stderr
    after = await asyncio.to_thread(_cli, "update", "c", "--rate-limit", "7", master=newer)
    assert after.returncode == 0, after.stderr
    deleted = await asyncio.to_thread(_cli, "delete", "c", master=newer)
    assert deleted.returncode == 0
    no_master = await asyncio.to_thread(_cli, "create", "d", stdin="gk_x\n", master="")
    assert (no_master.returncode, "MASTER_KEY_MISSING" in no_master.stderr) == (2, True)


async def test_a_pool_spills_over_only_what_its_first_account_cannot_carry(
    pooled: Harness,
) -> None:
    accounts = pooled.res.accounts
    assert (await accounts.choose(APP)).id == "default"
    # The default account is a window behind: its budget cannot send these soon.
    for i in range(100):
        await accounts.sending("default", f"t{i}")
    assert (await accounts.choose(APP)).id == "b"
    for i in range(150):
        await accounts.sending("b", f"u{i}")
    assert (await accounts.choose(APP)).id == "default"  # now the least behind for its rate
    for i in range(100):
        await accounts.sent("default", f"t{i}")
    assert (await accounts.choose(APP)).id == "default"


async def test_a_key_no_master_key_opens_never_stops_the_sweep(pooled: Harness) -> None:
    """The sweep re-enqueues every try-on (promise 3): an account it cannot read is skipped."""
    registry = pooled.res.accounts.registry
    await registry.create("c", STORED_ONLY_KEY)
    config = await registry.get("c")
    sealed = KeyBox(new_master_key()).seal(STORED_ONLY_KEY)  # sealed with another master key
    await pooled.res.redis.hset(
        pooled.res.keys.accounts, "c", json.dumps({**_plain(config), "sealed_key": sealed})
    )
    await refresh_credits(pooled.res)  # no exception
    assert (await registry.status("default")).balance is not None
    assert (await registry.status("c")).balance is None


def _plain(config: Any) -> dict[str, Any]:
    import msgspec

    plain: dict[str, Any] = msgspec.to_builtins(config)
    return plain


# --- an app's credits: its pool's -----------------------------------------------------------


async def test_tryon_v1_gates_and_reports_the_credits_of_the_apps_pool(
    pooled: Harness, second: Emulator
) -> None:
    """The default account empty, `b` with credits: `shop` (pool [default, b]) may still try
    on through /tryon/v1, and both credits endpoints show it `b`'s balance, not the default's."""
    h = pooled
    h.emulator.reset(credits=0)
    second.reset(credits=7)
    secret = h.gateway.headers["Authorization"].removeprefix("Bearer ")
    genlook = {"x-api-key": secret}

    r = await h.gateway.get("/tryon/v1/account/credits", headers=genlook)
    assert (r.status_code, r.json()) == (200, {"creditBalance": 7}), r.text
    r = await h.gateway.get("/v1/account/credits")
    assert (r.status_code, r.json()["creditBalance"]) == (200, 7), r.text

    buf = io.BytesIO()
    Image.new("RGB", (400, 500), (200, 160, 130)).save(buf, "JPEG")
    r = await h.gateway.post(
        "/tryon/v1/images/upload",
        files={"file": ("me.jpg", buf.getvalue(), "image/jpeg")},
        headers=genlook,
    )
    assert r.status_code == 200, r.text
    inline = {
        "externalId": "pooled-tee",
        "title": "Tee",
        "images": [{"source": {"url": f"{h.emulator.root}/_emulator/assets/red-tee.png"}}],
    }
    person = {"image": {"source": {"id": r.json()["imageId"]}}}
    r = await h.gateway.post(
        "/tryon/v1/try-on", json={"products": [inline], "person": person}, headers=genlook
    )
    assert (r.status_code, r.json()["status"]) == (200, "PENDING"), r.text
    # The product by reference: the catalog's hot path gates on the pool's balance too.
    r = await h.gateway.post(
        "/tryon/v1/try-on",
        json={"products": [{"externalId": "pooled-tee"}], "person": person},
        headers=genlook,
    )
    assert (r.status_code, r.json()["status"]) == (200, "PENDING"), r.text

    # `b` empty too: no account of the pool can pay, refused at once as Genlook does.
    second.reset(credits=0)
    r = await h.gateway.get("/tryon/v1/account/credits", headers=genlook)
    assert r.json() == {"creditBalance": 0}
    r = await h.gateway.post(
        "/tryon/v1/try-on",
        json={"products": [{"externalId": "pooled-tee"}], "person": person},
        headers=genlook,
    )
    assert (r.status_code, r.json()["code"]) == (402, "INSUFFICIENT_CREDITS"), r.text
