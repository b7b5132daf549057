"""The result copy (workers/runner.py, `storing`) driven in process: the runner against the
emulator over HTTP and the real test Redis, as a worker would run it, retries included.

Every branch ends with exactly one generation: a dead Genlook URL is recovered by reading
the generation again (no credit); a copy that keeps failing ends RESULT_NOT_STORED (never
lost silently, never hanging), which an operator's retry resumes, again without a credit."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from redis.asyncio import Redis
from service.app import create_app
from service.ops.failed import FailedLists
from service.ops.retry import retry_tryon
from service.resources import Resources
from service.results.objects import open_store
from service.settings import Settings
from service.tryons.models import TryOnRecord
from workers.runner import RetryLater, TryOnRunner
from workers.waiting import DurationModel

from tests.conftest import EMULATOR_SPEED, Emulator, emulator_settings, s3_env

SECRET = "sk_test_result_copy_key_0123456789"


class Stack:
    def __init__(self, client: AsyncTestClient[Any], res: Resources, emulator: Emulator) -> None:
        self.client = client
        self.res = res
        self.emulator = emulator
        durations = DurationModel(res.redis, res.keys, clock_speed=EMULATOR_SPEED)
        self.runner = TryOnRunner(res, durations, budget_s=15.0)

    async def accept(self) -> str:
        buf = io.BytesIO()
        Image.new("RGB", (64, 80), (200, 150, 120)).save(buf, "JPEG")
        r = await self.client.post("/v1/images", files={"file": ("p.jpg", buf.getvalue())})
        assert r.status_code == 201, r.text
        image_id = r.json()["id"]
        url = f"{self.emulator.root}/_emulator/assets/red-tee.png"
        r = await self.client.put(
            "/v1/products/tee", json={"title": "Tee", "images": [{"source": {"url": url}}]}
        )
        assert r.status_code in (200, 201), r.text
        body = {
            "products": [{"externalId": "tee"}],
            "person": {"image": {"source": {"id": image_id}}},
        }
        r = await self.client.post("/v1/try-ons", json=body)
        assert r.status_code == 202, r.text
        tryon_id: str = r.json()["id"]
        return tryon_id

    async def run(self, tryon_id: str, tries: int = 20) -> TryOnRecord:
        """As arq would: run the job again after each RetryLater, until terminal."""
        for job_try in range(1, tries + 1):
            with contextlib.suppress(RetryLater):
                await self.runner.run(tryon_id, job_try)
            record = await self.res.store.get(tryon_id)
            assert record is not None
            if record.is_terminal:
                return record
        raise AssertionError(f"{tryon_id} did not finish")

    def generations(self) -> int:
        return len(self.emulator.control("GET", "generations")["items"])

    def fault(self, **fault: Any) -> None:
        self.emulator.control("POST", "faults", json=fault)


def settings(emulator: Emulator, store: str, **extra: str) -> Settings:
    return emulator_settings(
        emulator,
        GATEWAY_SECRET_KEYS=f"{SECRET}=shop",
        RESULTS_STORE_URL=store,
        RESULTS_COPY_ATTEMPTS="3",
        RESULTS_STORE_TIMEOUT="2",
        **extra,
    )


@contextlib.asynccontextmanager
async def stack(s: Settings, emulator: Emulator) -> AsyncIterator[Stack]:
    res = Resources.build(s)
    try:
        async with AsyncTestClient(app=create_app(s)) as client:
            client.headers["Authorization"] = f"Bearer {SECRET}"
            yield Stack(client, res, emulator)
    finally:
        await res.aclose()


@pytest.fixture
async def local(redis: Redis, emulator: Emulator, tmp_path: Path) -> AsyncIterator[Stack]:
    async with stack(settings(emulator, str(tmp_path)), emulator) as s:
        yield s


async def link_loads(s: Stack, record: TryOnRecord) -> bytes:
    view = await s.res.links.view(record)
    assert view.result is not None
    r = await s.client.get(httpx.URL(view.result.image_url).raw_path.decode())
    assert r.status_code == 200, r.text
    return r.content


async def test_a_dead_genlook_url_is_read_again_without_a_credit(local: Stack) -> None:
    # The URL the completion carried answers 403 (expired): the copy reads the generation
    # again for a fresh URL, which loads.
    local.fault(endpoint="files", status=403, code="URL_EXPIRED", count=1)
    record = await local.run(await local.accept())
    assert record.status == "completed", record.error
    assert record.copy_attempts == 0
    assert local.generations() == 1
    counters = local.emulator.counters()
    assert counters["creditsSpent"] == 1
    assert await link_loads(local, record)


async def test_a_copy_that_keeps_failing_ends_result_not_stored_then_an_ops_retry_resumes(
    local: Stack,
) -> None:
    local.fault(endpoint="files", status=500)
    tryon_id = await local.accept()
    record = await local.run(tryon_id)
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.code == "RESULT_NOT_STORED"
    assert record.copy_attempts == 3
    assert record.generation_id is not None
    assert not record.spent_nothing  # the credit was spent: it is reported, not hidden
    assert tryon_id in [r.id for r in await FailedLists(local.res.redis, local.res.keys).tryons(10)]
    # Genlook is fine again: the operator's retry copies the result, no second generation.
    local.emulator.control("DELETE", "faults")
    retried = await retry_tryon(
        local.res.redis,
        local.res.keys,
        FailedLists(local.res.redis, local.res.keys),
        local.res.store,
        tryon_id,
        deadline=60,
        quotas=local.res.quotas,
        apps=local.res.apps,
    )
    assert retried.status == "storing"
    record = await local.run(tryon_id)
    assert record.status == "completed", record.error
    assert local.generations() == 1
    assert local.emulator.counters()["creditsSpent"] == 1
    assert await link_loads(local, record)


def use_s3(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)


async def test_a_store_that_is_down_ends_result_not_stored(
    redis: Redis, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An S3 endpoint nothing listens on: every write fails, fast (RESULTS_STORE_TIMEOUT).
    use_s3(monkeypatch, "http://127.0.0.1:9")
    async with stack(settings(emulator, "s3://results"), emulator) as s:
        record = await s.run(await s.accept())
        assert record.status == "failed"
        assert record.error is not None
        assert record.error.code == "RESULT_NOT_STORED"
        assert s.generations() == 1


# --- the S3 backend, against a real S3 API server on loopback (moto's server mode) ---------


async def test_results_live_in_an_s3_bucket(
    redis: Redis, emulator: Emulator, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_s3(monkeypatch, s3_server)
    made = await asyncio.to_thread(httpx.put, f"{s3_server}/tryon-results")  # the bucket
    assert made.status_code == 200
    config = settings(emulator, "s3://tryon-results")
    bucket = open_store(config.results)
    async with stack(config, emulator) as s:
        record = await s.run(await s.accept())
        assert record.status == "completed", record.error
        assert record.stored_result is not None
        key = record.stored_result.key
        # The object is in the bucket, with its content type, and served by the link.
        got = await obstore.get_async(bucket, key)
        assert got.attributes["Content-Type"] == record.stored_result.content_type
        assert got.meta["size"] == record.stored_result.size
        body = await link_loads(s, record)
        assert len(body) == record.stored_result.size
        # Past its retention, the sweeper deletes it (and the link then finds nothing).
        assert await s.res.results.sweep(record.stored_result.expires_at + 1) == 1
        with pytest.raises(FileNotFoundError):
            await obstore.head_async(bucket, key)
        view = await s.res.links.view(record)
        assert view.result is not None
        r = await s.client.get(httpx.URL(view.result.image_url).raw_path.decode())
        assert r.status_code == 404
