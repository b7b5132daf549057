"""`TryOnIntake.accept` called as any HTTP surface calls it: in process, on real Redis, with no
HTTP layer. It answers with the record and whether it replayed, and refuses with domain errors
(the HTTP layer's statuses come from `service.errors.http_status`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from service.access.models import Policy
from service.auth import Principal
from service.domain_errors import Conflict, NotFound, QuotaExhausted
from service.errors import http_status
from service.resources import Resources
from service.settings import Settings
from service.tryons.accept import TryOnIntake, idempotency_scope
from service.tryons.models import ProductDef, TryOnCreate

from tests.conftest import TEST_REDIS_URL

SECRET = Principal(app="shop", kind="secret")


def _request(external_id: str = "tee") -> tuple[TryOnCreate, bytes]:
    raw = msgspec.json.encode(
        {
            "products": [{"externalId": external_id}],
            "person": {"image": {"source": {"url": "https://example.com/person.jpg"}}},
        }
    )
    return msgspec.json.decode(raw, type=TryOnCreate), raw


@pytest.fixture
async def res(redis: Any) -> AsyncIterator[Resources]:
    res = Resources.build(
        Settings.from_env({"REDIS_URL": TEST_REDIS_URL}), redis, autopipeline=True
    )
    await res.catalog.put(
        "shop", ProductDef(external_id="tee", image_urls=["https://example.com/tee.jpg"]), None
    )
    yield res
    # Not `res.aclose()`: the Redis client is the fixture's.
    await res.pipeline.aclose()
    await res.genlook.aclose()


async def test_accept_then_replay(res: Resources) -> None:
    intake: TryOnIntake = res.intake
    body, raw = _request()
    first = await intake.accept(SECRET, body, raw=raw, idempotency_key="k1")
    assert not first.replayed
    assert first.record.product.external_id == "tee"
    assert await res.store.get(first.record.id) == first.record
    again = await intake.accept(SECRET, body, raw=raw, idempotency_key="k1")
    assert again.replayed
    assert again.record.id == first.record.id


async def test_the_key_with_another_request_is_a_conflict(res: Resources) -> None:
    body, raw = _request()
    await res.intake.accept(SECRET, body, raw=raw, idempotency_key="k1")
    with pytest.raises(Conflict) as raised:
        await res.intake.accept(SECRET, body, raw=raw + b" ", idempotency_key="k1")
    assert (http_status(raised.value), raised.value.code) == (409, "IDEMPOTENCY_KEY_REUSED")


async def test_a_key_whose_try_on_expired_is_a_conflict(res: Resources, redis: Any) -> None:
    body, raw = _request()
    first = await res.intake.accept(SECRET, body, raw=raw, idempotency_key="k1")
    await redis.delete(res.keys.tryon(first.record.id))  # the record's retention ran out
    with pytest.raises(Conflict) as raised:
        await res.intake.accept(SECRET, body, raw=raw, idempotency_key="k1")
    assert (http_status(raised.value), raised.value.code) == (409, "IDEMPOTENCY_KEY_EXPIRED")


async def test_a_refusal_writes_nothing(res: Resources, redis: Any) -> None:
    before = sorted(await redis.keys("*"))
    body, raw = _request("no-such-product")
    with pytest.raises(NotFound) as raised:
        await res.intake.accept(SECRET, body, raw=raw, idempotency_key="k1")
    assert (http_status(raised.value), raised.value.code) == (404, "PRODUCT_NOT_FOUND")
    assert sorted(await redis.keys("*")) == before


async def test_a_full_quota_still_replays_what_it_counted(res: Resources) -> None:
    capped = Principal(app="shop", kind="secret", policy=Policy(daily_credit_cap=1))
    body, raw = _request()
    first = await res.intake.accept(capped, body, raw=raw, idempotency_key="k1")
    again = await res.intake.accept(capped, body, raw=raw, idempotency_key="k1")
    assert again.replayed
    assert again.record.id == first.record.id
    with pytest.raises(QuotaExhausted) as raised:
        await res.intake.accept(capped, body, raw=raw, idempotency_key="k2")
    error = raised.value
    assert (http_status(error), error.code) == (402, "DAILY_CREDIT_CAP_REACHED")
    assert error.retry_after is not None
    assert error.retry_after >= 1


def test_a_browser_key_is_its_end_users_own() -> None:
    def browser(user: str) -> Principal:
        return Principal(app="shop", kind="publishable", external_user_id=user)

    assert idempotency_scope(SECRET, "k") == "k"
    assert idempotency_scope(browser("u1"), "k") != idempotency_scope(browser("u2"), "k")
    assert idempotency_scope(browser("u1"), "k") != "k"
