"""Names that cannot collide: apps, end users and upstream accounts each keep their own caches,
idempotency keys and upstream ids (service/namespacing.py).

The gateway runs in process (Litestar's test client) and try-ons are driven by the worker's own
`TryOnRunner`, in process too, against the emulator over HTTP and the test Redis database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from redis.asyncio import Redis
from service.access.models import App, Policy
from service.access.registry import AppRegistry
from service.app import create_app
from service.keys import Keys
from service.resources import Resources
from service.settings import Settings
from service.tryons.intake import new_tryon_id
from service.tryons.models import PersonDef, ProductDef, TryOnRecord
from service.tryons.store import IdempotencyConflict
from workers.runner import RetryLater, TryOnRunner
from workers.waiting import DurationModel

from tests.conftest import EMULATOR_SPEED, TEST_REDIS_URL, Emulator, emulator_settings

SK_A = "sk_test_namespacing_app_a_0123456789"
SK_B = "sk_test_namespacing_app_b_0123456789"
ORIGIN = "https://shop.example"
KEYS = Keys("tryon:")


def jpeg(color: tuple[int, int, int] = (200, 150, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 80), color).save(buf, "JPEG")
    return buf.getvalue()


def settings_for(emulator: Emulator, api_key: str | None = None) -> Settings:
    return emulator_settings(
        emulator,
        GENLOOK_API_KEY=api_key or emulator.api_key,
        GATEWAY_SECRET_KEYS=f"{SK_A}=appa,{SK_B}=appb",
        GATEWAY_KEY_CACHE_SECONDS="0",
    )


@dataclass
class Gateway:
    """One gateway in process and one worker's runner, sharing Redis and the emulator."""

    client: AsyncTestClient[Any]
    res: Resources
    runner: TryOnRunner
    emulator: Emulator

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def upload(self, key: str, data: bytes, **fields: str) -> str:
        r = await self.client.post(
            "/v1/images",
            files={"file": ("p.jpg", data, "image/jpeg")},
            data=fields,
            headers=self.auth(key),
        )
        assert r.status_code == 201, r.text
        image_id: str = r.json()["id"]
        return image_id

    async def put_product(self, key: str, external_id: str, image: str = "red-tee.png") -> None:
        url = f"{self.emulator.root}/_emulator/assets/{image}"
        r = await self.client.put(
            f"/v1/products/{external_id}",
            json={"title": external_id, "images": [{"source": {"url": url}}]},
            headers=self.auth(key),
        )
        assert r.status_code in (200, 201), r.text

    async def accept(self, key: str, image_id: str, product: dict[str, Any], **extra: Any) -> str:
        body = {"products": [product], "person": {"image": {"source": {"id": image_id}}}, **extra}
        r = await self.client.post("/v1/try-ons", json=body, headers=self.auth(key))
        assert r.status_code == 202, r.text
        tryon_id: str = r.json()["id"]
        return tryon_id

    async def run(self, tryon_id: str, runner: TryOnRunner | None = None) -> dict[str, Any]:
        """Drive the try-on to a terminal state as a worker would, retries included."""
        for job_try in range(1, 20):
            with contextlib.suppress(RetryLater):  # arq would run the job again: so do we
                await (runner or self.runner).run(tryon_id, job_try)
            record = await self.res.store.get(tryon_id)
            assert record is not None
            if record.is_terminal:
                return msgspec.to_builtins(record)  # type: ignore[no-any-return]
        raise AssertionError(f"{tryon_id} did not finish")

    async def tryon(
        self, key: str, image_id: str, product: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return await self.run(await self.accept(key, image_id, product, **extra))


def make_runner(res: Resources) -> TryOnRunner:
    durations = DurationModel(res.redis, res.keys, clock_speed=EMULATOR_SPEED)
    return TryOnRunner(res, durations, budget_s=15.0)


@pytest.fixture
async def gw(redis: Redis, emulator: Emulator) -> AsyncIterator[Gateway]:
    settings = settings_for(emulator)
    res = Resources.build(settings)
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            yield Gateway(client, res, make_runner(res), emulator)
    finally:
        await res.aclose()


def emulator_generations(emulator: Emulator) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = emulator.control("GET", "generations")["items"]
    return items


# --- issue 18 item 1: the photo cache is per app ----------------------------------------------


async def test_one_apps_erase_leaves_another_apps_copy_of_the_same_photo(gw: Gateway) -> None:
    photo = jpeg()
    image_a = await gw.upload(SK_A, photo, externalUserId="u1")
    image_b = await gw.upload(SK_B, photo, externalUserId="u1")
    await gw.put_product(SK_A, "tee")
    await gw.put_product(SK_B, "tee")
    assert (await gw.tryon(SK_A, image_a, {"externalId": "tee"}))["status"] == "completed"
    assert (await gw.tryon(SK_B, image_b, {"externalId": "tee"}))["status"] == "completed"
    # Each app's photo went up under its own upstream customer, so each app's erase reaches
    # its own copy and no other.
    assert gw.emulator.counters()["uploads"] == 2

    r = await gw.client.delete("/v1/customers/u1", headers=gw.auth(SK_A))
    assert r.status_code == 204, r.text

    done = await gw.tryon(SK_B, image_b, {"externalId": "tee"})
    assert done["status"] == "completed", done.get("error")


# --- issue 18 item 6: the one-shot product cache is per app -----------------------------------


async def test_one_shot_products_are_not_shared_between_apps(gw: Gateway) -> None:
    url = f"{gw.emulator.root}/_emulator/assets/red-tee.png"
    oneshot = {"title": "Tee", "images": [{"source": {"url": url}}]}
    image_a = await gw.upload(SK_A, jpeg())
    image_b = await gw.upload(SK_B, jpeg())
    assert (await gw.tryon(SK_A, image_a, oneshot))["status"] == "completed"
    assert (await gw.tryon(SK_B, image_b, oneshot))["status"] == "completed"
    # App B sent its own definition: it never references the product Genlook made for A.
    assert gw.emulator.counters()["productReferences"] == 0
    again = await gw.tryon(SK_A, image_a, oneshot, reuse=False)  # not from the result cache
    assert again["status"] == "completed"
    assert gw.emulator.counters()["productReferences"] == 1  # A's own cache still serves A


# --- issue 18 item 2: app ids cannot collide upstream ------------------------------------------


async def test_an_app_id_outside_the_alphabet_is_refused_everywhere_it_is_made(
    redis: Redis,
) -> None:
    registry = AppRegistry(redis, KEYS)
    with pytest.raises(ValueError, match="not allowed"):
        await registry.create_app("C:Z", Policy(), app_id="c:z")
    assert await redis.hget(KEYS.apps, "c:z") is None
    with pytest.raises(ValueError, match="not allowed"):
        create_app(
            Settings.from_env({"REDIS_URL": TEST_REDIS_URL, "GATEWAY_SECRET_KEYS": f"{SK_A}=c:z"})
        )
    cli = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service.cli", "keys", "create", "C:Z", "--id", "c:z", "--json"),
        env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(cli.communicate(), timeout=30)
    assert cli.returncode == 2, out + err
    assert b"not allowed" in err
    assert await redis.hget(KEYS.apps, "c:z") is None
    for fine in ("c", "app_0a1b2c", "shop.example-eu", "Demo"):
        await registry.create_app(fine, Policy(), app_id=fine)


async def test_a_legacy_app_id_with_a_colon_gets_its_own_upstream_products(gw: Gateway) -> None:
    # App `c:z` as an older gateway let `keys create --id` make it, next to app `c`.
    registry = AppRegistry(gw.res.redis, KEYS)
    await registry.create_app("C", Policy(), app_id="c")
    _, sk_c = await registry.add_key("c", "secret")
    legacy = App(id="c:z", name="C:Z", policy=Policy())
    await gw.res.redis.hset(KEYS.apps, legacy.id, msgspec.json.encode(legacy))  # type: ignore[misc]
    _, sk_cz = await registry.add_key("c:z", "secret")

    await gw.put_product(sk_c, "z:tee", image="red-tee.png")
    await gw.put_product(sk_cz, "tee", image="blue-hoodie.png")
    for key, product in ((sk_c, "z:tee"), (sk_cz, "tee")):
        done = await gw.tryon(key, await gw.upload(key, jpeg()), {"externalId": product})
        assert done["status"] == "completed", done.get("error")
    upstream = [g["productExternalId"] for g in emulator_generations(gw.emulator)]
    assert len(set(upstream)) == 2, upstream  # two apps' products, not one
    # A product under a new upstream id is created by the try-on's inline upsert: no credit
    # beyond the try-on's own.
    assert gw.emulator.counters()["creditsSpent"] == 2


# --- issue 12 item 6: end users' idempotency keys ---------------------------------------------


async def test_an_end_users_idempotency_key_never_replays_another_users_tryon(
    redis: Redis, gw: Gateway
) -> None:
    registry = AppRegistry(redis, KEYS)
    _, sk, pk = await registry.create_app("Shop", Policy(allowed_origins=(ORIGIN,)), app_id="shop")
    await gw.put_product(sk, "tee")
    # A browser uses only its own user's photos.
    images = {u: await gw.upload(sk, jpeg(), externalUserId=u) for u in ("team:bob", "team")}

    async def browser_tryon(user: str, key: str) -> httpx.Response:
        image = images[user]
        r = await gw.client.post("/v1/sessions", json={"externalUserId": user}, headers=gw.auth(sk))
        assert r.status_code == 201, r.text
        headers = {
            **gw.auth(pk),
            "Origin": ORIGIN,
            "X-Tryon-Token": r.json()["token"],
            "Idempotency-Key": key,
        }
        body = {"products": [{"externalId": "tee"}], "person": {"image": {"source": {"id": image}}}}
        return await gw.client.post("/v1/try-ons", json=body, headers=headers)

    bob = await browser_tryon("team:bob", "K")
    assert bob.status_code == 202, bob.text
    team = await browser_tryon("team", "bob:K")
    assert team.status_code == 202, team.text
    assert "Idempotent-Replayed" not in team.headers
    assert team.json()["id"] != bob.json()["id"]
    assert team.json().get("externalUserId") != "team:bob"
    again = await browser_tryon("team:bob", "K")  # bob's own retry still replays
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == bob.json()["id"]


async def test_a_replay_whose_record_belongs_to_another_user_is_refused(gw: Gateway) -> None:
    """Should two owners ever reach one stored key, the store still never hands one's try-on to
    the other as a replay."""

    def record(user: str) -> TryOnRecord:
        return TryOnRecord(
            id=new_tryon_id(),
            app="appa",
            product=ProductDef(external_id="tee"),
            person=PersonDef(url="https://example.com/p.jpg"),
            external_user_id=user,
            deadline_at=time.time() + 60,
        )

    accept = functools.partial(
        gw.res.store.accept,
        idempotency_key="K",
        request_fingerprint="same-body",
        idempotency_ttl=60,
        retention=60,
    )
    first, created = await accept(record("u1"))
    assert created
    with pytest.raises(IdempotencyConflict):
        await accept(record("u2"))
    replayed, created = await accept(record("u1"))
    assert (replayed.id, created) == (first.id, False)


# --- issue 17 item 5: cached upstream references belong to one upstream account ----------------


async def test_a_new_upstream_account_starts_with_empty_caches(gw: Gateway) -> None:
    await gw.put_product(SK_A, "tee")
    image = await gw.upload(SK_A, jpeg())
    assert (await gw.tryon(SK_A, image, {"externalId": "tee"}))["status"] == "completed"

    # The gateway now talks to another account (GENLOOK_API_KEY changed).
    other_key = "gk_test_namespacing_other_account_0123456789"
    gw.emulator.control("PUT", f"accounts/{other_key}", json={})
    other = settings_for(gw.emulator, api_key=other_key)
    res = Resources.build(other)
    try:
        before = gw.emulator.counters()
        tryon_id = await gw.accept(SK_A, image, {"externalId": "tee"}, reuse=False)
        done = await gw.run(tryon_id, make_runner(res))
    finally:
        await res.aclose()
    assert done["status"] == "completed", done.get("error")
    after = gw.emulator.counters()
    # One upload and one create: no call spent on a photo or product the account never had.
    assert after["uploads"] - before["uploads"] == 1
    assert after["generationsCreated"] - before["generationsCreated"] == 1
    creates = sum(n for name, n in after["requests"].items() if name.startswith("create_try_on"))
    creates_before = sum(
        n for name, n in before["requests"].items() if name.startswith("create_try_on")
    )
    assert creates - creates_before == 1, (before, after)


async def test_a_photo_lost_upstream_is_uploaded_again_once_for_every_tryon_sharing_it(
    gw: Gateway,
) -> None:
    await gw.put_product(SK_A, "tee")
    image = await gw.upload(SK_A, jpeg())
    first = await gw.tryon(SK_A, image, {"externalId": "tee"})
    assert first["status"] == "completed"
    lost = first["upstream_image_id"]

    # A backlog of try-ons that had already resolved the photo when the emulator restarted.
    # (Not from the result cache: each must send its own create.)
    backlog = [await gw.accept(SK_A, image, {"externalId": "tee"}, reuse=False) for _ in range(5)]

    def holding_the_old_id(r: Any) -> Any:
        r.status = "submitting"
        r.upstream_image_id = lost
        return r

    for tryon_id in backlog:
        await gw.res.store.update(tryon_id, holding_the_old_id)
    gw.emulator.reset()  # an empty emulator behind the same URL and key

    for tryon_id in backlog:
        done = await gw.run(tryon_id)
        assert done["status"] == "completed", done.get("error")
    assert gw.emulator.counters()["uploads"] == 1
