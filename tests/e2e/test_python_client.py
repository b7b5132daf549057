"""The Python client (clients/python, `tryon_client`) against a running gateway, worker and
emulator (subprocesses), with real loopback servers where a test needs a misbehaving network:
a proxy that drops an answer, a server that answers 429, a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from tests.conftest import TEST_REDIS_URL, Emulator
from tests.e2e.conftest import (
    SECRET,
    Gateway,
    eventually,
    photo_bytes,
    product_url,
    start_gateway,
)
from tests.e2e.receiver import Received, Receiver, Reply
from tryon_client import (
    AsyncClient,
    AuthenticationError,
    BadRequest,
    BatchCreate,
    Client,
    Conflict,
    ImageSource,
    NotFound,
    Person,
    PersonImage,
    ProductRef,
    RateLimited,
    RetryPolicy,
    TryOnCompleted,
    WebhookTest,
    verify_webhook,
)


@pytest.fixture(scope="module")
def gw(emulator_process: Emulator) -> Iterator[Gateway]:
    gateway = start_gateway(emulator_process, WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1")
    yield gateway
    gateway.stack.stop_all()


@pytest.fixture
def clean(emulator: Emulator) -> Iterator[Emulator]:
    """Emulator reset and the test database flushed, for the tests without an event loop."""
    redis = SyncRedis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    yield emulator
    redis.flushdb()
    redis.close()


@pytest.fixture
async def client(gw: Gateway, emulator: Emulator, redis: Redis) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(gw.url, SECRET, timeout=10) as c:
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def prepared(client: AsyncClient, emulator: Emulator) -> str:
    """A stored photo and the catalog product `tee`; the photo's id."""
    await client.put_product("tee", [product_url(emulator)], title="Red tee")
    return (await client.upload_photo(photo_bytes(), filename="p.jpg")).id


def test_sync_client_uploads_creates_waits_and_streams(gw: Gateway, clean: Emulator) -> None:
    with Client(gw.url, SECRET, timeout=10) as client:
        product = client.put_product("tee", [product_url(clean)], title="Red tee")
        assert product.external_id == "tee"
        assert product.images[0].source_url == product_url(clean)
        image = client.upload_photo(photo_bytes(), filename="p.jpg", crop=False)
        assert image.content_type == "image/jpeg"
        assert image.crop is False

        created = client.create_tryon("tee", image_id=image.id, metadata={"order": 7})
        assert created.status == "queued"
        done = client.wait(created.id, timeout=30)
        assert done.status == "completed"
        assert done.result is not None
        assert done.result.image_url
        assert done.metadata == {"order": 7}

        second = client.create_tryon("tee", image_id=image.id, metadata={"n": 2})
        states = [t.status for t in client.events(second.id)]
        assert states[-1] == "completed"
        assert len(states) == len(set(states))

        # Both try-ons, in the app's usage: by day (today) and by product. The second is the
        # same photo and product: it completed from the first's stored result, for no credit.
        usage = client.usage()
        assert (usage.total.accepted, usage.total.completed, usage.total.credits) == (2, 2, 1)
        by_product = client.usage(from_day=usage.to, to_day=usage.to, group_by="product")
        assert [(r.product_id, r.credits) for r in by_product.rows] == [("tee", 1)]


async def test_async_events_follow_a_tryon_to_its_end(
    client: AsyncClient, emulator: Emulator
) -> None:
    image_id = await prepared(client, emulator)
    emulator.reset(speed=10)  # slow enough that the stream sees more than the end
    created = await client.create_tryon("tee", image_id=image_id)
    seen = [tryon async for tryon in client.events(created.id)]
    states = [t.status for t in seen]
    # The first state is whatever the try-on had reached when the stream opened.
    assert states[-1] == "completed"
    assert len(states) == len(set(states)) >= 2
    assert seen[-1].result is not None
    # The stream's last state is what a read answers.
    assert await client.get_tryon(created.id) == seen[-1]


class DroppingProxy:
    """Forwards TCP to the gateway, except that the first try-on create's answer never
    reaches the client: the gateway gets the whole request and accepts it, then the client's
    connection is reset instead of answered (a load balancer dying at the wrong moment)."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.creates = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        first = await reader.read(65536)
        is_create = first.startswith(b"POST /v1/try-ons")
        self.creates += is_create
        up_writer.write(first)
        to_gateway = asyncio.create_task(self._pump(reader, up_writer))
        try:
            if is_create and self.creates == 1:
                await up_reader.read(1)  # the gateway answered: the try-on is accepted
                writer.transport.abort()
            else:
                await self._pump(up_reader, writer)
        finally:
            to_gateway.cancel()
            up_writer.close()
            writer.close()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()


async def test_a_retry_after_a_dropped_answer_makes_no_second_tryon(
    gw: Gateway, client: AsyncClient, emulator: Emulator, redis: Redis
) -> None:
    image_id = await prepared(client, emulator)
    proxy = DroppingProxy(gw.url)
    url = await proxy.start()
    try:
        async with AsyncClient(url, SECRET, timeout=10) as through_proxy:
            created = await through_proxy.create_tryon("tee", image_id=image_id)
            done = await through_proxy.wait(created.id, timeout=30)
    finally:
        await proxy.stop()
    assert proxy.creates == 2  # the request reached the gateway twice
    assert done.status == "completed"
    # ... and made one try-on, sent upstream once.
    assert len(await redis.keys("tryon:t:*")) == 1
    assert emulator.counters()["generationsCreated"] == 1


async def test_errors_are_typed_by_code(
    gw: Gateway, client: AsyncClient, emulator: Emulator
) -> None:
    with pytest.raises(NotFound) as missing:
        await client.get_tryon("tr_missing")
    assert (missing.value.status, missing.value.code) == (404, "TRYON_NOT_FOUND")

    with pytest.raises(NotFound) as no_product:
        await client.delete_product("nope")
    assert no_product.value.code == "PRODUCT_NOT_FOUND"

    with pytest.raises(BadRequest) as invalid:
        await client.create_session("shopper-1", expires_in_minutes=0)
    assert invalid.value.code == "VALIDATION_FAILED"
    assert invalid.value.details is not None
    assert invalid.value.details[0].path == "expiresInMinutes"

    async with AsyncClient(gw.url, "sk_test_not_a_key_0000000000000000") as stranger:
        with pytest.raises(AuthenticationError) as unknown:
            await stranger.get_credits()
    assert (unknown.value.status, unknown.value.code) == (401, "INVALID_API_KEY")

    image_id = await prepared(client, emulator)
    done = await client.wait((await client.create_tryon("tee", image_id=image_id)).id)
    with pytest.raises(Conflict) as late:
        await client.cancel_tryon(done.id)
    assert late.value.code == "TRYON_NOT_CANCELABLE"


def tryon_json(tryon_id: str) -> bytes:
    now = "2026-01-01T00:00:00.000Z"
    return msgspec.json.encode(
        {"id": tryon_id, "status": "queued", "createdAt": now, "updatedAt": now}
    )


def limited(retry_after: str) -> Reply:
    body = b'{"code": "RATE_LIMITED", "message": "Slow down.", "status": 429}'
    return Reply(status=429, headers={"Retry-After": retry_after}, body=body)


async def test_a_429_is_retried_after_its_retry_after_with_the_same_key(
    receiver: Receiver,
) -> None:
    # A real HTTP server on loopback answering 429 first: the gateway only answers 429 when
    # its own limits trip, which no test should have to wait for.
    receiver.reply = lambda r: (
        limited("1")
        if len(receiver.received) == 1
        else Reply(status=202, body=tryon_json("tr_after_429"))
    )
    async with AsyncClient(receiver.url, SECRET, timeout=5) as client:
        started = time.monotonic()
        created = await client.create_tryon("tee", image_id="img_1")
        elapsed = time.monotonic() - started
    assert created.id == "tr_after_429"
    first, second = receiver.received
    assert elapsed >= 1.0
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


async def test_a_retry_after_beyond_the_bound_is_raised_at_once(receiver: Receiver) -> None:
    receiver.reply = lambda r: limited("3600")
    policy = RetryPolicy(max_retry_after=30)
    async with AsyncClient(receiver.url, SECRET, timeout=5, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(RateLimited) as refused:
            await client.get_tryon("tr_1")
    assert time.monotonic() - started < 1
    assert refused.value.retry_after == 3600
    assert refused.value.code == "RATE_LIMITED"
    assert len(receiver.received) == 1


def delivered(received: list[Received], event_type: str) -> list[Received]:
    return [r for r in received if msgspec.json.decode(r.body)["type"] == event_type]


async def test_webhooks_from_a_real_delivery_verify_as_typed_events(
    client: AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    endpoint = await client.create_webhook_endpoint(receiver.url, description="backend")
    page = await client.list_webhook_endpoints()
    assert [e.id for e in page.items] == [endpoint.id]
    assert (await client.get_webhook_endpoint(endpoint.id)).description == "backend"

    image_id = await prepared(client, emulator)
    created = await client.create_tryon("tee", image_id=image_id)
    assert (await client.wait(created.id)).status == "completed"
    (completion,) = delivered(await receiver.wait_for(1), "tryon.completed")
    event = verify_webhook(completion.body, completion.headers, endpoint.secret)
    assert isinstance(event, TryOnCompleted)
    assert event.data.id == created.id
    assert event.data.result is not None

    # the receiver has the request before the worker records its answer
    async def recorded() -> bool:
        return [d.status for d in await client.tryon_deliveries(created.id)] == ["succeeded"]

    await eventually(recorded, what="the delivery is not recorded as succeeded")
    deliveries = await client.tryon_deliveries(created.id)
    await client.resend_delivery(endpoint.id, deliveries[0].id)
    resent = delivered(await receiver.wait_for(2), "tryon.completed")[-1]
    assert resent.headers["webhook-id"] == completion.headers["webhook-id"]

    rotated = await client.rotate_webhook_secret(endpoint.id, overlap_seconds=0)
    await client.test_webhook_endpoint(endpoint.id)
    (test,) = delivered(await receiver.wait_for(3), "webhook.test")
    test_event = verify_webhook(test.body, test.headers, rotated.secret)
    assert isinstance(test_event, WebhookTest)
    assert test_event.data.endpoint_id == endpoint.id

    attempts = await client.webhook_attempts(endpoint.id)
    assert {d.event_type for d in attempts} == {"tryon.completed", "webhook.test"}
    assert (await client.recover_webhook_endpoint(endpoint.id, since=0)).resent == []
    await client.delete_webhook_endpoint(endpoint.id)
    with pytest.raises(NotFound):
        await client.get_webhook_endpoint(endpoint.id)


async def test_catalog_sessions_and_account(client: AsyncClient, emulator: Emulator) -> None:
    for name in ("a", "b", "c"):
        await client.put_product(name, [product_url(emulator)])
    first = await client.list_products(limit=2)
    assert [p.external_id for p in first.items] == ["a", "b"]
    assert first.has_more
    rest = await client.list_products(limit=2, cursor=first.next_cursor)
    assert [p.external_id for p in rest.items] == ["c"]
    await client.delete_product("c")
    with pytest.raises(NotFound):
        await client.get_product("c")

    session = await client.create_session("shopper-1", max_try_ons=2, products=["a"])
    assert session.token
    assert (session.max_try_ons, session.products) == (2, ["a"])

    credits = await client.get_credits()
    assert credits.credit_balance > 0
    await client.erase_customer("shopper-1")
    callback = await client.get_callback_secret()
    assert callback.secret.startswith("whsec_")
    assert (await client.webhook_schedule()).max_attempts > 1


async def test_batches(client: AsyncClient, emulator: Emulator) -> None:
    await client.put_product("tee", [product_url(emulator)])
    image = await client.upload_photo(photo_bytes())
    body = BatchCreate(
        person=Person(image=PersonImage(source=ImageSource(id=image.id))),
        products=[ProductRef(external_id="tee")] * 3,
        metadata={"lookbook": "spring"},
    )
    batch = await client.create_batch(body, idempotency_key="spring")
    assert (batch.total, len(batch.tryons)) == (3, 3)
    assert (await client.create_batch(body, idempotency_key="spring")).id == batch.id
    for t in batch.tryons:
        await client.wait(t.id, timeout=30)
    done = await client.get_batch(batch.id, limit=2)
    assert done.status == "completed"
    assert done.counts.completed == 3
    assert done.next_offset == 2
    assert (await client.cancel_batch(batch.id)).counts.canceled == 0
    with pytest.raises(NotFound):
        await client.get_batch("ba_nope")
