"""The try-on runner in process, as arq tests its own `Worker`: the real `Resources` a worker
builds at start-up (workers/main.py) on the test Redis database, the session's emulator over
HTTP, and the gateway app in process (Litestar's test client) accepting the try-ons exactly as
production does. No worker process and no arq loop: a test calls `TryOnRunner.run` itself, one
job attempt at a time, and sees each `RetryLater` that arq would turn into a `Retry`.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from redis.asyncio import Redis
from service.access.models import Policy
from service.access.registry import AppRegistry
from service.app import create_app
from service.keys import Keys
from service.resources import Resources
from service.settings import Settings
from service.tryons.models import TryOnRecord
from workers.main import build_runner
from workers.runner import RetryLater, TryOnRunner
from workers.shutdown import CreateGate

from tests.conftest import Emulator, emulator_settings

APP = "shop"
# The app's daily credit cap: each accepted try-on holds one unit of it until it ends, and
# gives it back if it ended without spending a credit.
DAILY_CAP = 50
# How long a test waits for a condition a running attempt is about to reach.
WITHIN = 10.0


@dataclass
class Harness:
    res: Resources
    gateway: AsyncTestClient[Any]
    emulator: Emulator
    gate: CreateGate
    runner: TryOnRunner
    # Every hand-over an attempt asked arq for, in order.
    retries: list[RetryLater] = field(default_factory=list)

    def new_runner(self) -> TryOnRunner:
        """Another worker's runner (its own gate) on the same Redis and emulator."""
        return build_runner(self.res, CreateGate())

    # --- the gateway side -----------------------------------------------------------------

    async def put_product(
        self, external_id: str = "tee", image: str = "red-tee.png", title: str = "Red tee"
    ) -> None:
        url = f"{self.emulator.root}/_emulator/assets/{image}"
        r = await self.gateway.put(
            f"/v1/products/{external_id}",
            json={"title": title, "images": [{"source": {"url": url}}]},
        )
        assert r.status_code in (200, 201), r.text

    async def upload_photo(self, **fields: str) -> str:
        buf = io.BytesIO()
        Image.new("RGB", (64, 80), (200, 150, 120)).save(buf, "JPEG")
        r = await self.gateway.post(
            "/v1/images", files={"file": ("p.jpg", buf.getvalue(), "image/jpeg")}, data=fields
        )
        assert r.status_code == 201, r.text
        image_id: str = r.json()["id"]
        return image_id

    async def accept(
        self, image_id: str, product: dict[str, Any] | None = None, **extra: Any
    ) -> str:
        """`POST /v1/try-ons` through the gateway app; the accepted try-on's id."""
        body = {
            "products": [product or {"externalId": "tee"}],
            "person": {"image": {"source": {"id": image_id}}},
            **extra,
        }
        r = await self.gateway.post("/v1/try-ons", json=body)
        assert r.status_code == 202, r.text
        tryon_id: str = r.json()["id"]
        return tryon_id

    async def tryon(self, **extra: Any) -> str:
        """A catalog product `tee` and a fresh photo, accepted: the common starting point."""
        await self.put_product()
        return await self.accept(await self.upload_photo(), **extra)

    # --- the worker side ------------------------------------------------------------------

    async def run(self, tryon_id: str, job_try: int = 1, runner: TryOnRunner | None = None) -> str:
        """One job attempt, as `workers.jobs.run_tryon` makes it."""
        return await (runner or self.runner).run(tryon_id, job_try)

    async def drive(
        self, tryon_id: str, attempts: int = 10, runner: TryOnRunner | None = None
    ) -> TryOnRecord:
        """Job attempts until the try-on is terminal, as arq would retry it (without waiting
        out the deferral: the fleet pause, if any, is in the budget every attempt honours)."""
        for job_try in range(1, attempts + 1):
            try:
                await self.run(tryon_id, job_try, runner)
            except RetryLater as later:
                self.retries.append(later)
                continue
            return await self.record(tryon_id)
        raise AssertionError(f"try-on {tryon_id} not terminal after {attempts} attempts")

    async def record(self, tryon_id: str) -> TryOnRecord:
        record = await self.res.store.get(tryon_id)
        assert record is not None, tryon_id
        return record

    async def wait_for(self, tryon_id: str, check: Any) -> TryOnRecord:
        """The record once `check(record)` holds (a running attempt's progress)."""
        give_up = time.monotonic() + WITHIN
        while True:
            record = await self.record(tryon_id)
            if check(record):
                return record
            assert time.monotonic() < give_up, f"{tryon_id}: condition never held: {record}"
            await asyncio.sleep(0.01)

    async def wait_requests(self, endpoint: str, n: int = 1) -> None:
        """Until the emulator has received `n` calls of `endpoint` (a running attempt's
        progress that the record does not show)."""
        give_up = time.monotonic() + WITHIN
        while (await asyncio.to_thread(self.counters))["requests"].get(endpoint, 0) < n:
            assert time.monotonic() < give_up, f"no {endpoint} call within {WITHIN}s"
            await asyncio.sleep(0.01)

    # --- what it cost ---------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        return self.emulator.counters()

    def creates(self) -> int:
        """Create calls that reached the emulator (sync or not), whatever their answer."""
        requests = self.counters()["requests"]
        return int(requests.get("create_try_on_sync", 0) + requests.get("create_try_on", 0))

    def cost(self) -> tuple[int, int, int]:
        """(create calls received, generations created, credits spent net of refunds)."""
        c = self.counters()
        return self.creates(), c["generationsCreated"], c["creditsSpent"] - c["creditsRefunded"]

    def fault(self, endpoint: str = "create_try_on_sync", **fault: Any) -> None:
        self.emulator.control("POST", "faults", json={"endpoint": endpoint, **fault})

    async def quota_held(self) -> int:
        """Units of the app's daily cap held now (one per try-on that may have spent a credit)."""
        key = self.res.quotas.daily_cap(APP, DAILY_CAP, time.time()).key
        return int(await self.res.redis.get(key) or 0)


def error_code(record: TryOnRecord) -> str | None:
    """The code a try-on failed with (None: it did not fail)."""
    return record.error.code if record.error is not None else None


@pytest.fixture
def harness_env() -> dict[str, str]:
    """Settings on top of the harness' own; a test overrides it with
    `@pytest.mark.parametrize("harness_env", [{...}])`."""
    return {}


def settings_for(emulator: Emulator, overrides: dict[str, str]) -> Settings:
    # These tests repeat one photo and product on purpose, each try-on to be generated: the
    # result cache is off unless a test turns it on (test_result_cache.py).
    return emulator_settings(emulator, **{"RESULTS_REUSE_TTL": "0", **overrides})


@pytest.fixture
async def harness(
    emulator: Emulator, redis: Redis, harness_env: dict[str, str]
) -> AsyncIterator[Harness]:
    settings = settings_for(emulator, harness_env)
    _, secret, _ = await AppRegistry(redis, Keys()).create_app(
        APP, Policy(daily_credit_cap=DAILY_CAP), app_id=APP
    )
    res = Resources.build(settings)
    gate = CreateGate()
    runner = build_runner(res, gate)
    try:
        async with AsyncTestClient(app=create_app(settings)) as gateway:
            gateway.headers["Authorization"] = f"Bearer {secret}"
            yield Harness(res=res, gateway=gateway, emulator=emulator, gate=gate, runner=runner)
    finally:
        await res.aclose()
