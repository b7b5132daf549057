"""Deadlines: a try-on not sent upstream by its deadline ends DEADLINE_EXCEEDED, spends nothing
and gives its quota back once; one sent before follows through, however late it ends.

The gateway runs in process (Litestar's test client) and accepts as in production; the worker's
own `TryOnRunner` drives each try-on in process, one job attempt at a time, against the emulator
over HTTP and the test Redis database. An app made in the registry has a daily cap of one
try-on, so a unit given back is seen as the next try-on being accepted, and a unit given back
twice as the one after it being accepted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from service.access.models import Policy
from service.app import create_app
from service.resources import Resources
from service.tryons.models import TryOnRecord
from workers.jobs import upload_photo
from workers.runner import RetryLater, TryOnRunner
from workers.waiting import DurationModel

from tests.conftest import EMULATOR_SPEED, TEST_REDIS_URL, Emulator, assert_error, emulator_settings
from tests.integration.test_browser_access import ORIGIN, Shop, _shop, _upload

CALLBACK = "http://127.0.0.1:9/hook"


@dataclass
class Rig:
    shop: Shop
    res: Resources
    runner: TryOnRunner
    emulator: Emulator
    image_id: str

    async def accept(self, headers: dict[str, str] | None = None, **extra: Any) -> str:
        body = {
            "products": [{"externalId": "tee"}],
            "person": {"image": {"source": {"id": self.image_id}}},
            **extra,
        }
        r = await self.shop.client.post(
            "/v1/try-ons", json=body, headers=headers or self.shop.server()
        )
        assert r.status_code == 202, r.text
        tryon_id: str = r.json()["id"]
        return tryon_id

    async def run(self, tryon_id: str) -> TryOnRecord:
        """Drive the try-on to a terminal state as a worker would, retries included."""
        for job_try in range(1, 20):
            with contextlib.suppress(RetryLater):  # arq would run the job again: so do we
                await self.runner.run(tryon_id, job_try)
            record = await self.res.store.get(tryon_id)
            assert record is not None
            if record.is_terminal:
                return record
        raise AssertionError(f"{tryon_id} did not finish")

    async def lift_cap(self) -> None:
        """Start the app's day afresh: its cap of one is in the way of a test of something else."""
        await self.res.redis.delete(*await self.res.redis.keys("tryon:q:day:*"))

    def generations(self) -> int:
        created: int = self.emulator.counters()["generationsCreated"]
        return created


@pytest.fixture
def rig_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def rig(redis: Redis, emulator: Emulator, rig_env: dict[str, str]) -> AsyncIterator[Rig]:
    settings = emulator_settings(
        emulator, GATEWAY_KEY_CACHE_SECONDS="0", WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1", **rig_env
    )
    res = Resources.build(settings)
    durations = DurationModel(res.redis, res.keys, clock_speed=EMULATOR_SPEED)
    runner = TryOnRunner(res, durations, budget_s=15.0)
    policy = Policy(allowed_origins=(ORIGIN,), daily_credit_cap=1, browser_deadline_seconds=1)
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            shop = await _shop(redis, client, policy)
            url = f"{emulator.root}/_emulator/assets/red-tee.png"
            r = await client.put(
                "/v1/products/tee",
                json={"title": "Red tee", "images": [{"source": {"url": url}}]},
                headers=shop.server(),
            )
            assert r.status_code in (200, 201), r.text
            image_id = await _upload(shop, await shop.token())
            # Upstream already (as the worker's upload job does at once): the try-ons' only
            # budget wait is then the create's own.
            assert await upload_photo({"res": res}, image_id) == "uploaded"
            yield Rig(shop, res, runner, emulator, image_id)
    finally:
        await res.aclose()


async def published(events: PubSub) -> list[tuple[str, str | None]]:
    """(status, error code) of each try-on view published on the subscribed channel."""
    views = []
    quiet_until = time.monotonic() + 0.5
    while time.monotonic() < quiet_until:
        # None also for the subscription's own confirmation: read on until quiet.
        message = await events.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            view = msgspec.json.decode(message["data"])
            views.append((view["status"], view.get("error", {}).get("code")))
    return views


async def outbox_types(redis: Redis, tryon_id: str) -> list[str]:
    entries = await redis.xrange("tryon:outbox")
    return [f[b"type"].decode() for _, f in entries if f[b"tryon"].decode() == tryon_id]


async def test_a_deadline_passed_in_the_queue_spends_nothing_and_gives_the_quota_back_once(
    rig: Rig, redis: Redis
) -> None:
    tryon_id = await rig.accept(deadlineSeconds=1, callbackUrl=CALLBACK)
    # The daily cap of one is held by the queued try-on.
    assert_error(
        await rig.shop.client.post(
            "/v1/try-ons",
            json={
                "products": [{"externalId": "tee"}],
                "person": {"image": {"source": {"id": rig.image_id}}},
            },
            headers=rig.shop.server(),
        ),
        402,
        "DAILY_CREDIT_CAP_REACHED",
    )
    # The channel SSE streams and long-polls of this try-on wake on.
    events = redis.pubsub()
    await events.subscribe(rig.res.keys.tryon_events(tryon_id))
    await asyncio.sleep(1.1)  # no worker took it up in time
    record = await rig.run(tryon_id)

    assert record.status == "failed"
    assert record.error is not None
    assert record.error.code == "DEADLINE_EXCEEDED"
    assert record.unsent
    assert record.spent_nothing
    assert rig.generations() == 0
    assert rig.emulator.counters()["creditsSpent"] == 0
    # The event reached waiters and the webhook outbox (the app's callback URL).
    assert await published(events) == [("failed", "DEADLINE_EXCEEDED")]
    await events.aclose()
    assert await outbox_types(redis, tryon_id) == ["tryon.failed"]
    # Given back: the next try-on fits the cap of one; given back once: the one after does not,
    # however often the job runs again (a retried job, the sweeper) or is canceled.
    await rig.runner.run(tryon_id, 2)
    r = await rig.shop.client.delete(f"/v1/try-ons/{tryon_id}", headers=rig.shop.server())
    assert_error(r, 409, "TRYON_NOT_CANCELABLE")
    await rig.accept()
    second = await rig.shop.client.post(
        "/v1/try-ons",
        json={
            "products": [{"externalId": "tee"}],
            "person": {"image": {"source": {"id": rig.image_id}}},
        },
        headers=rig.shop.server(),
    )
    assert_error(second, 402, "DAILY_CREDIT_CAP_REACHED")


async def test_a_deadline_passed_while_waiting_for_a_budget_cell_sends_nothing(rig: Rig) -> None:
    tryon_id = await rig.accept(deadlineSeconds=1)
    # The fleet's budget is paused (as after an upstream 429) for longer than the deadline.
    await rig.res.budget.pause(4.0)
    started = time.monotonic()
    record = await rig.run(tryon_id)
    waited = time.monotonic() - started

    assert record.error is not None
    assert record.error.code == "DEADLINE_EXCEEDED", record
    assert record.spent_nothing
    # It gave up at its deadline, not when the budget came back.
    assert waited < 3.0, waited
    await asyncio.sleep(max(0.0, 4.2 - waited))
    assert rig.generations() == 0


async def test_a_cancel_while_waiting_for_a_budget_cell_sends_nothing(rig: Rig) -> None:
    """Taken up by a worker (`submitting`) but not sent: still cancelable, and the worker that
    gets its budget cell afterwards does not send it."""
    tryon_id = await rig.accept()
    await rig.res.budget.pause(1.5)
    job = asyncio.create_task(rig.run(tryon_id))
    # The record in Redis is the only sign the worker took it up.
    while (record := await rig.res.store.get(tryon_id)) is not None and record.status == "queued":  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    r = await rig.shop.client.delete(f"/v1/try-ons/{tryon_id}", headers=rig.shop.server())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled"
    record = await asyncio.wait_for(job, 10)
    assert record.status == "canceled"
    assert record.create_started_at is None
    assert rig.generations() == 0
    # The unit came back: the cap of one takes another try-on.
    await rig.accept()


@pytest.mark.parametrize(
    ("rig_env", "slow"),
    [
        # The sync create call itself outlasts the deadline.
        ({"GENLOOK_WAIT_STRATEGY": "sync"}, {"endpoint": "create_try_on_sync", "latency": 2.0}),
        # The create returns at once; the status poll that sees the end comes past the deadline.
        ({"GENLOOK_WAIT_STRATEGY": "poll"}, {"endpoint": "get_generation", "latency": 1.5}),
    ],
    ids=["sync", "poll"],
)
async def test_a_tryon_sent_before_its_deadline_completes_after_it(
    rig: Rig, slow: dict[str, Any]
) -> None:
    rig.emulator.control("POST", "faults", slow)
    tryon_id = await rig.accept(deadlineSeconds=1)
    record = await rig.run(tryon_id)

    assert record.status == "completed", record
    assert record.completed_at is not None
    assert record.send_by is not None
    assert record.completed_at > record.send_by  # finished past its deadline
    assert rig.generations() == 1


async def test_the_deadline_is_the_requests_or_a_browsers_app_default(rig: Rig) -> None:
    async def send_by(tryon_id: str) -> float | None:
        record = await rig.res.store.get(tryon_id)
        assert record is not None
        return None if record.send_by is None else round(record.send_by - record.created_at, 3)

    token = await rig.shop.token()
    browser = rig.shop.browser(token)
    server = rig.shop.server()
    assert await send_by(await rig.accept(server)) is None  # secret keys: no app default
    await rig.lift_cap()
    assert await send_by(await rig.accept(server, deadlineSeconds=30)) == 30
    await rig.lift_cap()
    assert await send_by(await rig.accept(browser)) == 1  # the app's browser default
    await rig.lift_cap()
    assert await send_by(await rig.accept(browser, deadlineSeconds=45.5)) == 45.5
    await rig.lift_cap()
    # Longer than the worker keeps any try-on: the worker's bound (WORKER_TRYON_DEADLINE).
    assert await send_by(await rig.accept(server, deadlineSeconds=10**6)) == 900
    for bad in (0, 0.5, -1, "10", True):
        r = await rig.shop.client.post(
            "/v1/try-ons",
            json={
                "products": [{"externalId": "tee"}],
                "person": {"image": {"source": {"id": rig.image_id}}},
                "deadlineSeconds": bad,
            },
            headers=server,
        )
        assert_error(r, 400, "VALIDATION_FAILED")


async def test_a_browser_cancels_its_own_queued_tryon_only(rig: Rig) -> None:
    alice, bob = await rig.shop.token("u1"), await rig.shop.token("bob")
    tryon_id = await rig.accept(rig.shop.browser(alice))
    r = await rig.shop.client.delete(f"/v1/try-ons/{tryon_id}", headers=rig.shop.browser(bob))
    assert_error(r, 404, "TRYON_NOT_FOUND")
    r = await rig.shop.client.delete(f"/v1/try-ons/{tryon_id}", headers=rig.shop.browser(alice))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled"
    # The unit came back: the cap of one takes another try-on.
    await rig.accept(rig.shop.browser(alice))


def test_the_browser_default_is_set_with_keys_policy(redis: Redis) -> None:
    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "keys", *args, "--json"],
            env={**os.environ, "REDIS_URL": TEST_REDIS_URL},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    made = keys("create", "Shop", "--id", "shop2", "--browser-deadline", "90")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["app"]["policy"]["browser_deadline_seconds"] == 90
    off = keys("policy", "shop2", "--browser-deadline", "none")
    assert json.loads(off.stdout)["app"]["policy"]["browser_deadline_seconds"] is None
    for bad in ("0.5", "nan", "inf", "soon"):
        refused = keys("policy", "shop2", "--browser-deadline", bad)
        assert refused.returncode == 2, (bad, refused.stdout)
