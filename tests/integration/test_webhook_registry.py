"""The webhook endpoint registry against a real Redis, and the models it stores and shows."""

from __future__ import annotations

import asyncio
import json
import time

import msgspec
import pytest
from redis.asyncio import Redis
from service.keys import Keys
from service.webhooks import signing
from service.webhooks.models import (
    MAX_HEADERS,
    EndpointCreate,
    EndpointUpdate,
    SecretRotate,
    WebhookEndpoint,
    created_view,
    public_view,
    rotated_view,
)
from service.webhooks.registry import (
    MAX_SECRET_VERSIONS,
    EndpointRegistry,
    active_secrets,
    new_endpoint_id,
)
from standardwebhooks import Webhook

KEYS = Keys("t:")
T0 = 1_750_000_000.0


class Clock:
    """Injectable time: tests move it, the registry reads it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(redis: Redis, clock: Clock) -> EndpointRegistry:
    return EndpointRegistry(redis, KEYS, clock=clock)


def body(url: str = "https://example.com/hook", **fields: object) -> EndpointCreate:
    return EndpointCreate(url=url, **fields)  # type: ignore[arg-type]


# --- CRUD ----------------------------------------------------------------------------------------


async def test_create_then_get(registry: EndpointRegistry, redis: Redis) -> None:
    created = await registry.create(
        "shop",
        body(description="orders", event_types=["tryon.completed"], headers={"X-Env": "prod"}),
    )
    assert created.id.startswith("we_")
    assert len(created.id) == 29
    assert created.app == "shop"
    assert created.enabled
    assert created.disabled_reason is None
    assert created.created_at == created.updated_at == T0
    assert len(created.secrets) == 1
    assert created.secrets[0].expires_at is None
    assert len(signing.secret_key(created.secrets[0].secret)) == 32

    assert await registry.get("shop", created.id) == created
    stored = json.loads(await redis.get(KEYS.webhook_endpoint(created.id)))
    assert stored["url"] == "https://example.com/hook"
    assert await redis.zrange(KEYS.webhook_endpoints("shop"), 0, -1) == [created.id.encode()]


async def test_unknown_and_malformed_ids_read_as_absent(registry: EndpointRegistry) -> None:
    assert await registry.get("shop", new_endpoint_id(T0)) is None
    assert await registry.get("shop", "we_../../etc") is None
    assert await registry.update("shop", "nope", EndpointUpdate(description="x")) is None
    assert await registry.delete("shop", "nope") is False


async def test_each_app_sees_only_its_own(registry: EndpointRegistry) -> None:
    mine = await registry.create("shop", body())
    theirs = await registry.create("other", body("https://other.example/hook"))

    assert await registry.get("other", mine.id) is None
    assert await registry.update("other", mine.id, EndpointUpdate(url="https://evil")) is None
    assert await registry.rotate_secret("other", mine.id) is None
    assert await registry.disable("other", mine.id, "x") is None
    assert await registry.enable("other", mine.id) is None
    assert await registry.delete("other", mine.id) is False
    assert await registry.get("shop", mine.id) == mine  # untouched

    assert [e.id for e in (await registry.list("shop"))[0]] == [mine.id]
    assert [e.id for e in (await registry.list("other"))[0]] == [theirs.id]
    assert (
        await registry.count("shop"),
        await registry.count("other"),
        await registry.count("x"),
    ) == (1, 1, 0)


async def test_partial_update(registry: EndpointRegistry, clock: Clock) -> None:
    created = await registry.create(
        "shop", body(description="orders", event_types=["tryon.failed"], headers={"X-A": "1"})
    )
    clock.advance(10)
    updated = await registry.update("shop", created.id, EndpointUpdate(url="https://new.example"))
    assert updated is not None
    assert updated.url == "https://new.example"
    assert updated.description == "orders"
    assert updated.event_types == ["tryon.failed"]
    assert updated.headers == {"X-A": "1"}
    assert updated.secrets == created.secrets
    assert (updated.created_at, updated.updated_at) == (T0, T0 + 10)

    cleared = await registry.update(
        "shop", created.id, EndpointUpdate(description=None, event_types=[], headers={})
    )
    assert cleared is not None
    assert (cleared.description, cleared.event_types, cleared.headers) == (None, [], {})
    assert await registry.get("shop", created.id) == cleared

    off = await registry.update("shop", created.id, EndpointUpdate(enabled=False))
    assert off is not None
    assert (off.enabled, off.disabled_reason) == (False, "manual")
    on = await registry.update("shop", created.id, EndpointUpdate(enabled=True))
    assert on is not None
    assert (on.enabled, on.disabled_reason) == (True, None)


async def test_delete(registry: EndpointRegistry, redis: Redis) -> None:
    created = await registry.create("shop", body())
    assert await registry.delete("shop", created.id) is True
    assert await registry.get("shop", created.id) is None
    assert (await registry.list("shop"))[0] == []
    assert await redis.exists(KEYS.webhook_endpoint(created.id)) == 0
    assert await registry.delete("shop", created.id) is False


# --- pagination ----------------------------------------------------------------------------------


async def test_pages_in_creation_order(registry: EndpointRegistry, clock: Clock) -> None:
    ids = []
    for i in range(5):
        ids.append((await registry.create("shop", body(f"https://h{i}.example"))).id)
        clock.advance(0.002)  # ids order by millisecond
    await registry.create("other", body())

    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = await registry.list("shop", cursor, limit=2)
        seen += [e.id for e in items]
        pages += 1
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3

    items, cursor = await registry.list("shop", limit=5)
    assert [e.id for e in items] == ids
    assert cursor is None
    with pytest.raises(ValueError, match="limit"):
        await registry.list("shop", limit=0)


async def test_a_deleted_cursor_still_pages_on(registry: EndpointRegistry, clock: Clock) -> None:
    ids = []
    for i in range(4):
        ids.append((await registry.create("shop", body(f"https://h{i}.example"))).id)
        clock.advance(0.002)
    _, cursor = await registry.list("shop", limit=2)
    assert cursor == ids[1]
    await registry.delete("shop", ids[1])
    rest, cursor = await registry.list("shop", cursor, limit=2)
    assert [e.id for e in rest] == ids[2:]
    assert cursor is None


# --- secrets -------------------------------------------------------------------------------------


async def test_rotation_keeps_the_old_secret_signing_until_the_overlap_ends(
    registry: EndpointRegistry, clock: Clock
) -> None:
    created = await registry.create("shop", body())
    old = created.secrets[0].secret
    clock.advance(60)
    rotated = await registry.rotate_secret("shop", created.id, overlap_seconds=3600)
    assert rotated is not None
    new = rotated.secrets[0].secret
    assert new != old
    assert rotated.secrets[0].expires_at is None
    assert rotated.secrets[1].secret == old
    assert rotated.secrets[1].expires_at == T0 + 60 + 3600
    assert await registry.get("shop", created.id) == rotated

    during = active_secrets(rotated, clock.now + 3599)
    assert during == [new, old]
    assert registry.active_secrets(rotated) == [new, old]  # at the registry's clock
    headers = signing.headers("msg_1", int(time.time()), b"{}", during)
    assert Webhook(old).verify(b"{}", headers) == {}
    assert Webhook(new).verify(b"{}", headers) == {}
    assert active_secrets(rotated, clock.now + 3600) == [new]


async def test_expired_versions_are_pruned_on_read(
    registry: EndpointRegistry, clock: Clock, redis: Redis
) -> None:
    created = await registry.create("shop", body())
    rotated = await registry.rotate_secret("shop", created.id, overlap_seconds=100)
    assert rotated is not None
    stamp = rotated.updated_at

    clock.advance(99)
    still = await registry.get("shop", created.id)
    assert still is not None
    assert len(still.secrets) == 2

    clock.advance(1)
    pruned = await registry.get("shop", created.id)
    assert pruned is not None
    assert [v.secret for v in pruned.secrets] == [rotated.secrets[0].secret]
    assert pruned.updated_at == stamp  # pruning is not an update by the app
    # and written back: the retired secret is no longer at rest
    stored = json.loads(await redis.get(KEYS.webhook_endpoint(created.id)))
    assert [v["secret"] for v in stored["secrets"]] == [rotated.secrets[0].secret]

    listed, _ = await registry.list("shop")
    assert listed == [pruned]


async def test_rotation_without_overlap_and_in_quick_succession(
    registry: EndpointRegistry, clock: Clock
) -> None:
    created = await registry.create("shop", body())
    now_only = await registry.rotate_secret("shop", created.id, overlap_seconds=0)
    assert now_only is not None
    assert len(now_only.secrets) == 1  # the old one expired at once and was pruned

    first = await registry.rotate_secret("shop", created.id, overlap_seconds=1000)
    clock.advance(10)
    second = await registry.rotate_secret("shop", created.id, overlap_seconds=5000)
    assert first is not None
    assert second is not None
    # an earlier deadline is never extended by a later rotation
    assert [v.expires_at for v in second.secrets] == [None, T0 + 10 + 5000, T0 + 1000]

    for _ in range(MAX_SECRET_VERSIONS + 2):
        latest = await registry.rotate_secret("shop", created.id)
    assert latest is not None
    assert len(latest.secrets) == MAX_SECRET_VERSIONS
    with pytest.raises(ValueError, match="overlap"):
        await registry.rotate_secret("shop", created.id, overlap_seconds=-1)


async def test_concurrent_changes_are_all_kept(registry: EndpointRegistry) -> None:
    created = await registry.create("shop", body())
    results = await asyncio.gather(
        registry.rotate_secret("shop", created.id),
        registry.update("shop", created.id, EndpointUpdate(description="d")),
        registry.update("shop", created.id, EndpointUpdate(headers={"X-A": "1"})),
        registry.disable("shop", created.id, "too many failures"),
        registry.rotate_secret("shop", created.id),
    )
    assert all(r is not None for r in results)
    final = await registry.get("shop", created.id)
    assert final is not None
    assert len(final.secrets) == 3
    assert final.description == "d"
    assert final.headers == {"X-A": "1"}
    assert final.disabled_reason == "too many failures"
    # every secret an answer showed is stored
    shown = {r.secrets[0].secret for r in (results[0], results[4]) if r is not None}
    assert shown <= {v.secret for v in final.secrets}


# --- enable, disable, fan-out --------------------------------------------------------------------


async def test_disable_and_enable(registry: EndpointRegistry, clock: Clock) -> None:
    created = await registry.create("shop", body())
    clock.advance(5)
    off = await registry.disable("shop", created.id, "endpoint failing for 5 days")
    assert off is not None
    assert (off.enabled, off.disabled_reason, off.updated_at) == (
        False,
        "endpoint failing for 5 days",
        T0 + 5,
    )
    assert await registry.for_event("shop", "tryon.completed") == []
    on = await registry.enable("shop", created.id)
    assert on is not None
    assert (on.enabled, on.disabled_reason) == (True, None)
    assert await registry.for_event("shop", "tryon.completed") == [on]

    created_off = await registry.create("shop", body(enabled=False))
    assert created_off.disabled_reason == "manual"


async def test_event_filters(registry: EndpointRegistry, clock: Clock) -> None:
    every = await registry.create("shop", body())
    clock.advance(0.002)
    progress = await registry.create("shop", body(event_types=["tryon.processing"]))
    clock.advance(0.002)
    failures = await registry.create("shop", body(event_types=["tryon.failed", "tryon.canceled"]))
    await registry.create("other", body())

    def ids(items: list[WebhookEndpoint]) -> list[str]:
        return [e.id for e in items]

    assert ids(await registry.for_event("shop", "tryon.completed")) == [every.id]
    assert ids(await registry.for_event("shop", "tryon.failed")) == [every.id, failures.id]
    # off by default: only an endpoint that lists it gets it
    assert ids(await registry.for_event("shop", "tryon.processing")) == [progress.id]


# --- wire models and views -----------------------------------------------------------------------


def test_create_body_is_camel_case_and_strict() -> None:
    decoded = msgspec.json.decode(
        b'{"url":"https://x.example","eventTypes":["tryon.completed"],"headers":{"X-A":"1"}}',
        type=EndpointCreate,
    )
    assert decoded.event_types == ["tryon.completed"]
    with pytest.raises(msgspec.ValidationError, match="unknown field `event_types`"):
        msgspec.json.decode(b'{"url":"u","event_types":[]}', type=EndpointCreate)
    with pytest.raises(msgspec.ValidationError, match=r"eventTypes\[0\]"):
        msgspec.json.decode(b'{"url":"u","eventTypes":["tryon.done"]}', type=EndpointCreate)
    with pytest.raises(msgspec.ValidationError, match="twice"):
        msgspec.json.decode(
            b'{"url":"u","eventTypes":["tryon.failed","tryon.failed"]}', type=EndpointCreate
        )
    with pytest.raises(msgspec.ValidationError, match="url"):
        msgspec.json.decode(b'{"url":""}', type=EndpointCreate)
    with pytest.raises(msgspec.ValidationError, match="unknown field `secret`"):
        msgspec.json.decode(b'{"secret":"whsec_x"}', type=EndpointUpdate)
    assert msgspec.json.decode(b'{"overlapSeconds":0}', type=SecretRotate).overlap_seconds == 0
    with pytest.raises(msgspec.ValidationError, match="overlapSeconds"):
        msgspec.json.decode(b'{"overlapSeconds":-5}', type=SecretRotate)


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "internal"},
        {"Transfer-Encoding": "chunked"},
        {"connection": "close"},
        {"Content-Type": "text/plain"},
        {"Webhook-Signature": "v1,forged"},
        {"webhook-id": "msg_1"},
        {"X-A": "1", "x-a": "2"},
        {"X-A": "a\r\nX-Injected: 1"},
        {"Bad Name": "1"},
        {"X-Big": "v" * 1025},
        {f"X-{i}": "1" for i in range(MAX_HEADERS + 1)},
        {f"X-{i}": "v" * 1000 for i in range(5)},
    ],
)
def test_custom_headers_are_bounded_and_cannot_override_ours(headers: dict[str, str]) -> None:
    raw = msgspec.json.encode({"url": "https://x.example", "headers": headers})
    with pytest.raises(msgspec.ValidationError, match="headers"):
        msgspec.json.decode(raw, type=EndpointCreate)
    with pytest.raises(msgspec.ValidationError, match="headers"):
        msgspec.json.decode(msgspec.json.encode({"headers": headers}), type=EndpointUpdate)


def test_update_distinguishes_absent_from_null() -> None:
    absent = msgspec.json.decode(b"{}", type=EndpointUpdate)
    assert absent.description is msgspec.UNSET
    assert msgspec.json.decode(b'{"description":null}', type=EndpointUpdate).description is None


async def test_views_show_the_secret_only_at_creation_and_rotation(
    registry: EndpointRegistry,
) -> None:
    created = await registry.create("shop", body(description="d"))
    secret = created.secrets[0].secret

    shown = msgspec.json.encode(created_view(created))
    assert json.loads(shown)["secret"] == secret
    assert json.loads(shown)["eventTypes"] == []

    plain = msgspec.json.encode(public_view(created))
    assert b"whsec_" not in plain
    assert b"secret" not in plain.lower()
    assert set(json.loads(plain)) == {
        "id",
        "url",
        "description",
        "eventTypes",
        "enabled",
        "headers",
        "disabledReason",
        "createdAt",
        "updatedAt",
    }

    rotated = await registry.rotate_secret("shop", created.id, overlap_seconds=60)
    assert rotated is not None
    out = json.loads(msgspec.json.encode(rotated_view(rotated)))
    assert out["secret"] == rotated.secrets[0].secret != secret
    assert out["previousSecretExpiresAt"].endswith("Z")
    assert b"whsec_" not in msgspec.json.encode(public_view(rotated))
