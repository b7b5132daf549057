"""The accept script refuses a try-on built from a remembered product or photo that changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from service.access.quotas import Quotas
from service.autopipeline import AutoPipeline
from service.keys import Keys
from service.tryons.lookups import Expected, LookupCache, StaleLookup
from service.tryons.models import PersonDef, ProductDef, TryOnRecord
from service.tryons.store import TryOnStore

from tests.conftest import TEST_REDIS_URL

KEYS = Keys("t:")


@pytest.fixture
async def store(redis: Any) -> AsyncIterator[TryOnStore]:
    pipeline = AutoPipeline(TEST_REDIS_URL, connect_timeout=2.0, command_timeout=2.0)
    yield TryOnStore(redis, KEYS, "q", pipeline, quotas=Quotas(redis, KEYS))
    await pipeline.aclose()


def _record(tryon_id: str) -> TryOnRecord:
    return TryOnRecord(
        id=tryon_id,
        app="app",
        product=ProductDef(external_id="tee"),
        person=PersonDef(image_id="img_1"),
        deadline_at=1e10,
    )


async def _accept(store: TryOnStore, record: TryOnRecord, expected: Expected) -> Any:
    return await store.accept(
        record,
        idempotency_key="k1",
        request_fingerprint="fp",
        idempotency_ttl=60,
        retention=60,
        expected=expected,
    )


async def test_unchanged_values_are_accepted(store: TryOnStore, redis: Any) -> None:
    await redis.hset(KEYS.catalog("app"), "tee", b"product-v1")
    await redis.set(KEYS.image("img_1"), b"image-v1")
    expected = Expected(KEYS.catalog("app"), "tee", b"product-v1", KEYS.image("img_1"), b"image-v1")
    record, created = await _accept(store, _record("to_a"), expected)
    assert created
    assert await store.get("to_a") == record


@pytest.mark.parametrize("changed", ["product", "image", "deleted"])
async def test_a_changed_value_writes_nothing(store: TryOnStore, redis: Any, changed: str) -> None:
    await redis.hset(KEYS.catalog("app"), "tee", b"product-v2" if changed == "product" else b"p1")
    if changed != "deleted":
        await redis.set(KEYS.image("img_1"), b"image-v2" if changed == "image" else b"i1")
    expected = Expected(KEYS.catalog("app"), "tee", b"p1", KEYS.image("img_1"), b"i1")
    with pytest.raises(StaleLookup):
        await _accept(store, _record("to_b"), expected)
    assert await redis.keys("t:t:*") == []
    assert await redis.keys("t:idem:*") == []
    assert await redis.zcard("q") == 0


async def test_no_expectation_checks_nothing(store: TryOnStore) -> None:
    _, created = await _accept(store, _record("to_c"), Expected())
    assert created


def test_the_cache_is_bounded_and_forgets() -> None:
    cache = LookupCache(limit=2)
    cache.put("a", "", b"1")
    cache.put("b", "f", b"2")
    cache.put("c", "", b"3")
    assert cache.get("a") is None
    assert cache.get("b", "f") == b"2"
    cache.put("c", "", None)
    assert cache.get("c") is None
    cache.forget(Expected(catalog_key="b", external_id="f", product_raw=b"2"))
    assert cache.get("b", "f") is None
