"""The `Deliverer` in process against receivers that lie, one failure mode per test.

Built as the worker builds it (`make_deliverer`), on the test Redis database, sending over the
guarded client to a real HTTP server on loopback. Each receiver reads the request, then answers
in its own broken way: a garbled `Retry-After`, an 8 KiB "OK" page, a status line dripped a
byte at a time, no answer at all, a connection closed mid-answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from service.resources import Resources
from service.settings import Settings
from service.webhooks.deliverer import Deliverer
from service.webhooks.deliveries import Attempt, Delivery, callback_target, delivery_id
from service.webhooks.models import EndpointCreate
from workers.webhooks import deliver_webhook, make_deliverer, sweep_deliveries

from tests.conftest import TEST_REDIS_URL

ATTEMPT_TIMEOUT = 1.0
Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


class LyingReceiver:
    """Reads each request in full, then lets `answer` write (or not write) the response."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[float] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"

    async def start(self) -> LyingReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            self.requests.append(time.monotonic())
            await self.answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


def reply(status: int, *headers: str, body: bytes = b"") -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *headers]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return answer


@pytest.fixture
async def res(redis: Any) -> AsyncIterator[Resources]:
    settings = Settings.from_env(
        {
            "REDIS_URL": TEST_REDIS_URL,
            "WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
            "WEBHOOK_ATTEMPT_TIMEOUT": str(ATTEMPT_TIMEOUT),
            # An endpoint failing for 0.3 s is disabled: the disable path in a test's time.
            "WEBHOOK_DISABLE_AFTER_DAYS": str(0.3 / 86_400),
        }
    )
    resources = Resources.build(settings, redis)
    yield resources
    await resources.genlook.aclose()
    await resources.pipeline.aclose()


@pytest.fixture
async def deliverer(res: Resources) -> AsyncIterator[Deliverer]:
    built, client = make_deliverer(res)
    yield built
    await client.aclose()


@contextlib.asynccontextmanager
async def receiving(answer: Answer) -> AsyncIterator[LyingReceiver]:
    receiver = await LyingReceiver(answer).start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def pending(res: Resources, url: str, *, target: str | None = None) -> Delivery:
    """A recorded delivery, due now, as the dispatcher writes it before the first attempt."""
    now = time.time()
    target = target or callback_target("shop")
    tryon_id = f"to_{time.time_ns()}"
    # The try-on the event is about: a delivery of an erased (missing) try-on is never created.
    await res.redis.hset(res.keys.tryon(tryon_id), "doc", b"{}")  # type: ignore[misc]
    delivery = Delivery(
        id=delivery_id(f"evt_{time.time_ns()}_completed", target),
        event_id="evt_to_test_completed",
        event_type="tryon.completed",
        app="shop",
        target=target,
        url=url,
        tryon_id=tryon_id,
        body='{"type":"tryon.completed"}',
        created_at=now,
        next_attempt_at=now,
    )
    assert await res.deliveries.create(delivery)
    return delivery


async def stored(res: Resources, delivery: Delivery) -> Delivery:
    found = await res.deliveries.get(delivery.id)
    assert found is not None
    return found


async def test_a_garbled_retry_after_is_ignored_and_every_attempt_counts(
    res: Resources, deliverer: Deliverer
) -> None:
    async with receiving(reply(503, "retry-after: soon")) as receiver:
        endpoint = await res.endpoints.create("shop", EndpointCreate(url=receiver.url))
        delivery = await pending(res, receiver.url, target=endpoint.id)
        before = time.time()
        assert await deliverer.attempt(delivery.id) == "retrying"
        first = await stored(res, delivery)
        assert first.attempts == 1
        (attempt,) = await res.deliveries.attempts(delivery.id)
        assert attempt.status == 503
        assert attempt.retry_after is None
        # The published schedule applies: 5 s (±10 %) after the first failure.
        assert first.next_attempt_at is not None
        assert 4.5 <= first.next_attempt_at - before <= 5.6
        # Failing for longer than WEBHOOK_DISABLE_AFTER_DAYS (0.3 s here) disables it.
        await asyncio.sleep(0.4)
        first.next_attempt_at = time.time()  # due now, as its retry job finds it
        await res.deliveries.save(first)
        assert await deliverer.attempt(delivery.id) == "retrying"
    assert (await stored(res, delivery)).attempts == 2
    assert len(await res.deliveries.attempts(delivery.id)) == 2
    disabled = await res.endpoints.get("shop", endpoint.id)
    assert disabled is not None
    assert not disabled.enabled
    assert (disabled.disabled_reason or "").startswith("failing since")


async def one_attempt(
    res: Resources, deliverer: Deliverer, answer: Answer
) -> tuple[str, Attempt, Delivery, int]:
    """One attempt of a fresh delivery to a receiver answering so: (outcome, the attempt as
    recorded, the delivery after it, requests the receiver got)."""
    async with receiving(answer) as receiver:
        delivery = await pending(res, receiver.url)
        outcome = await asyncio.wait_for(deliverer.attempt(delivery.id), 10 * ATTEMPT_TIMEOUT)
    (attempt,) = await res.deliveries.attempts(delivery.id)
    return outcome, attempt, await stored(res, delivery), len(receiver.requests)


def cut_after(raw: bytes) -> Answer:
    """Writes `raw`, then closes the connection."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return answer


async def test_a_large_2xx_answer_is_a_success(res: Resources, deliverer: Deliverer) -> None:
    page = b"<html><body>" + b"OK " * 2730 + b"</body></html>"  # ~8 KiB, over the 4 KiB cap
    assert len(page) > 2 * res.settings.webhooks.max_response_bytes
    answer = reply(200, "content-type: text/html", body=page)
    outcome, attempt, delivery, requests = await one_attempt(res, deliverer, answer)
    assert (outcome, delivery.status, requests) == ("succeeded", "succeeded", 1)
    assert attempt.status == 200
    assert attempt.error is None
    assert attempt.response is not None
    assert attempt.response.startswith("<html><body>OK OK")
    assert len(attempt.response) == 512


async def drip(writer: asyncio.StreamWriter) -> None:
    """A status line and headers one byte every 0.2 s: each read is quick, the answer never."""
    for byte in b"HTTP/1.1 200 OK\r\n" + b"x-slow: " + b"." * 10_000:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def test_a_dripping_receiver_gets_one_deadline_per_attempt(
    res: Resources, deliverer: Deliverer
) -> None:
    started = time.monotonic()
    outcome, attempt, delivery, _ = await one_attempt(res, deliverer, drip)
    assert ATTEMPT_TIMEOUT <= time.monotonic() - started < ATTEMPT_TIMEOUT + 1.0
    assert (outcome, delivery.attempts) == ("retrying", 1)
    assert attempt.status is None
    assert "WEBHOOK_ATTEMPT_TIMEOUT" in (attempt.error or "")
    assert attempt.next_attempt_at is not None


async def test_a_receiver_that_never_answers_times_out(
    res: Resources, deliverer: Deliverer
) -> None:
    async def hang(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)

    started = time.monotonic()
    outcome, attempt, delivery, _ = await one_attempt(res, deliverer, hang)
    assert time.monotonic() - started < ATTEMPT_TIMEOUT + 1.0
    assert (outcome, delivery.attempts) == ("retrying", 1)
    assert attempt.status is None
    assert "timeout" in (attempt.error or "")


async def test_a_connection_closed_before_the_status_is_a_failure(
    res: Resources, deliverer: Deliverer
) -> None:
    outcome, attempt, delivery, _ = await one_attempt(res, deliverer, cut_after(b"HTTP/1.1 2"))
    assert (outcome, delivery.attempts) == ("retrying", 1)
    assert attempt.status is None
    assert attempt.error == "RemoteProtocolError"


async def test_a_connection_closed_mid_body_after_a_2xx_is_a_success(
    res: Resources, deliverer: Deliverer
) -> None:
    # The status line is the receiver's verdict; the body is only an excerpt for the log.
    answer = cut_after(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nreceived")
    outcome, attempt, delivery, _ = await one_attempt(res, deliverer, answer)
    assert (outcome, delivery.status) == ("succeeded", "succeeded")
    assert attempt.status == 200
    assert attempt.response == "received"


async def test_the_sweep_never_starts_a_second_attempt_beside_one_in_flight(
    res: Resources, deliverer: Deliverer
) -> None:
    arrived, answered = asyncio.Event(), asyncio.Event()

    async def slow_failure(writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await answered.wait()
        await reply(500)(writer)

    async with receiving(slow_failure) as receiver:
        delivery = await pending(res, receiver.url)
        first = asyncio.create_task(deliverer.attempt(delivery.id))
        await asyncio.wait_for(arrived.wait(), 5)
        # The attempt has run past the sweep's grace (as a drip once made it): the sweep sees
        # the delivery overdue and queues a job, which a worker runs at once.
        await res.redis.zadd(res.keys.deliveries_due, {delivery.id: 0})
        assert await sweep_deliveries(res, deliverer) == 1
        ctx = {"deliverer": deliverer}
        assert await deliver_webhook(ctx, delivery.id) == "in flight"
        answered.set()
        assert await first == "retrying"
        # The same job run again just after the attempt ended (a second worker, a late
        # pick-up): the schedule says 5 s, not now.
        assert await deliver_webhook(ctx, delivery.id) == "not due"
        await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1
    assert (await stored(res, delivery)).attempts == 1
    # Nothing queued to spin on the slot and send early: the sweep's job and the retry's only.
    queued = {raw.decode() for raw in await res.redis.zrange(res.store.queue.name, 0, -1)}
    assert queued == {f"dlv:{delivery.id}:0", f"dlv:{delivery.id}:1"}
