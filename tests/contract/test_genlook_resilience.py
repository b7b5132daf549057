"""Contract: retries, faults, rate limits, lost responses and hooks, over real HTTP against the
emulator. The emulator's counters say what reached it, so "never sent twice" is measured."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest
from service.genlook import (
    GenlookClient,
    OutcomeUnknown,
    Person,
    Priority,
    ProductImage,
    ProductInput,
    ProductUpsert,
    RateLimited,
    RequestNotSent,
    ServerError,
    TryOnRequest,
)

from tests.conftest import Emulator, free_port
from tests.contract.conftest import TIMEOUT, MakeClient, RecordingHooks

AssetUrl = Callable[..., str]


def fault(emulator: Emulator, **spec: object) -> None:
    emulator.control("POST", "faults", spec)


async def ready_request(
    client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> TryOnRequest:
    up = await client.upload_image(person_jpeg, filename="me.jpg", content_type="image/jpeg")
    await client.upsert_product(
        ProductUpsert(external_id="p1", images=[ProductImage.from_url(asset_url())])
    )
    return TryOnRequest(
        products=[ProductInput(external_id="p1")], person=Person.from_image_id(up.image_id)
    )


# --- 5xx ----------------------------------------------------------------------------------------


async def test_5xx_on_get_generation_is_retried_transparently(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    created = await client.create_try_on(await ready_request(client, person_jpeg, asset_url))
    fault(emulator, endpoint="get_generation", status=503, count=2)
    gen = await client.get_generation(created.generation_id)
    assert gen.generation_id == created.generation_id
    counters = emulator.counters()
    assert counters["requests"]["get_generation"] == 3
    assert counters["processed"]["get_generation"] == 1


async def test_5xx_exhausting_retries_is_raised(
    emulator: Emulator, make_client: MakeClient
) -> None:
    fault(emulator, endpoint="get_credits", status=500, count=10)
    client = make_client(max_retries=2)
    with pytest.raises(ServerError) as info:
        await client.get_credits()
    assert info.value.status == 500
    assert emulator.counters()["requests"]["get_credits"] == 3


@pytest.mark.parametrize("method", ["create_try_on", "create_try_on_sync"])
async def test_5xx_on_create_is_raised_not_retried(
    method: str,
    emulator: Emulator,
    client: GenlookClient,
    person_jpeg: bytes,
    asset_url: AssetUrl,
) -> None:
    req = await ready_request(client, person_jpeg, asset_url)
    fault(emulator, endpoint=method, status=500, count=1)
    with pytest.raises(ServerError):
        await getattr(client, method)(req)
    counters = emulator.counters()
    assert counters["requests"][method] == 1
    assert counters["generationsCreated"] == 0


# --- lost responses -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["create_try_on", "create_try_on_sync"])
async def test_lost_response_on_create_is_outcome_unknown_and_sent_once(
    method: str,
    emulator: Emulator,
    client: GenlookClient,
    person_jpeg: bytes,
    asset_url: AssetUrl,
) -> None:
    req = await ready_request(client, person_jpeg, asset_url)
    fault(emulator, endpoint=method, mode="drop_after", count=1)
    with pytest.raises(OutcomeUnknown) as info:
        await getattr(client, method)(req)
    assert info.value.endpoint == method
    counters = emulator.counters()
    assert counters["requests"][method] == 1
    assert counters["generationsCreated"] == 1  # the server acted; we must not act again


async def test_read_timeout_on_create_is_outcome_unknown_and_sent_once(
    emulator: Emulator, make_client: MakeClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    client = make_client(timeout=httpx.Timeout(5.0, read=0.3))
    req = await ready_request(client, person_jpeg, asset_url)
    fault(emulator, endpoint="create_try_on", mode="timeout", count=1)
    with pytest.raises(OutcomeUnknown):
        await client.create_try_on(req)
    assert emulator.counters()["requests"]["create_try_on"] == 1
    emulator.control("DELETE", "faults")


async def test_dropped_get_is_retried(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    created = await client.create_try_on(await ready_request(client, person_jpeg, asset_url))
    fault(emulator, endpoint="get_generation", mode="drop", count=1)
    gen = await client.get_generation(created.generation_id)
    assert gen.generation_id == created.generation_id
    counters = emulator.counters()
    assert counters["requests"]["get_generation"] == 2
    assert counters["processed"]["get_generation"] == 1


async def test_drop_after_on_idempotent_upsert_is_retried(
    emulator: Emulator, client: GenlookClient, asset_url: AssetUrl
) -> None:
    fault(emulator, endpoint="upsert_product", mode="drop_after", count=1)
    product = await client.upsert_product(
        ProductUpsert(external_id="again", images=[ProductImage.from_url(asset_url())])
    )
    assert product.external_id == "again"
    assert emulator.counters()["requests"]["upsert_product"] == 2


async def test_connection_refused_is_request_not_sent(make_client: MakeClient) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{free_port()}/tryon/v1")
    req = TryOnRequest(products=[ProductInput(external_id="x")], person=Person.from_image_id("i"))
    with pytest.raises(RequestNotSent) as info:
        await client.create_try_on(req)
    assert info.value.endpoint == "create_try_on"


# --- rate limits --------------------------------------------------------------------------------


async def test_rate_limited_burst_then_retry_through(
    emulator: Emulator, make_client: MakeClient
) -> None:
    emulator.reset(rateLimit=4)
    no_retry = make_client(max_retries=0)
    results = await asyncio.gather(
        *(no_retry.get_credits() for _ in range(8)), return_exceptions=True
    )
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == 4
    assert all(r.code == "RATE_LIMITED" and r.status == 429 for r in limited)
    assert all(isinstance(r.retry_after, float) and 0 < r.retry_after <= 1.0 for r in limited)

    hooks = RecordingHooks()
    patient = make_client(max_retries=6, hooks=hooks)
    balances = await asyncio.gather(*(patient.get_credits() for _ in range(8)))
    assert len(balances) == 8
    assert hooks.of("rate_limited")
    assert all(e[2] is not None for e in hooks.of("rate_limited"))
    assert emulator.counters()["rateLimited"] >= 4


async def test_create_retries_through_a_429_storm_and_creates_once(
    emulator: Emulator, make_client: MakeClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    hooks = RecordingHooks()
    client = make_client(max_retries=5, hooks=hooks)
    req = await ready_request(client, person_jpeg, asset_url)
    hooks.events.clear()
    # Retry-After is whole seconds (the emulator rounds up, as HTTP requires).
    emulator.control("POST", "storm", {"seconds": 0.3, "retryAfter": 1})
    created = await client.create_try_on(req)
    assert created.generation_id
    counters = emulator.counters()
    assert counters["generationsCreated"] == 1
    assert counters["requests"]["create_try_on"] >= 2
    befores = hooks.of("before")
    assert len(befores) == counters["requests"]["create_try_on"]
    assert all(e == ("before", "create_try_on", Priority.START) for e in befores)
    limited = hooks.of("rate_limited")
    assert len(limited) == len(befores) - 1
    assert all(e[2] == 1.0 for e in limited)


# --- hooks --------------------------------------------------------------------------------------


async def test_hooks_see_every_attempt_with_priority(
    emulator: Emulator, make_client: MakeClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    hooks = RecordingHooks()
    client = make_client(hooks=hooks)
    req = await ready_request(client, person_jpeg, asset_url)
    created = await client.create_try_on(req)
    fault(emulator, endpoint="get_generation", status=502, count=1)
    await client.get_generation(created.generation_id)
    await client.get_credits()
    assert hooks.of("before") == [
        ("before", "upload_image", Priority.START),
        ("before", "upsert_product", Priority.START),
        ("before", "create_try_on", Priority.START),
        ("before", "get_generation", Priority.POLL),
        ("before", "get_generation", Priority.POLL),
        ("before", "get_credits", Priority.OTHER),
    ]
    assert [e[2] for e in hooks.of("after") if e[1] == "get_generation"] == [502, 200]
    assert hooks.of("rate_limited") == []


# --- the key never leaks over real HTTP -----------------------------------------------------------


async def test_key_absent_from_all_logs(
    emulator: Emulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore
    client = make_client(timeout=TIMEOUT)
    fault(emulator, endpoint="get_credits", status=503, count=1)
    await client.get_credits()
    fault(emulator, endpoint="get_product", mode="drop", count=5)
    with pytest.raises(OutcomeUnknown) as info:
        await client.get_product("x")
    assert emulator.api_key not in str(info.value)
    assert emulator.api_key not in repr(client)
    ours = [r for r in caplog.records if r.name == "service.genlook"]
    assert len(ours) >= 5
    assert emulator.api_key not in caplog.text
