"""Webhook work in the worker: the outbox dispatcher, the retry job, and the due-delivery sweep.

The dispatcher turns each outbox entry (written atomically with the try-on's state change)
into one recorded delivery per target, then makes the first attempt at once, in-process, so a
receiver hears of a result within milliseconds. Retries are arq jobs. An entry is acknowledged
only after its deliveries are recorded; entries a crashed dispatcher left unacknowledged are
claimed by another after `_CLAIM_IDLE_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from service.resources import Resources
from service.webhooks.deliverer import Deliverer
from service.webhooks.deliveries import OPS_TARGET, Delivery, callback_target, delivery_id
from service.webhooks.models import DEFAULT_EVENT_TYPES, WebhookEndpoint
from service.webhooks.ssrf import guarded_client

log = logging.getLogger("workers.webhooks")

GROUP = "dispatchers"
_BLOCK_MS = 1000
_BATCH = 100
_CLAIM_IDLE_MS = 30_000
# First attempts in flight per worker process.
_IN_FLIGHT = 200
# How long a first attempt waits in-process for its target's slot or its try-on's turn.
_PATIENCE = 5.0


def make_deliverer(res: Resources) -> tuple[Deliverer, httpx.AsyncClient]:
    w = res.settings.webhooks
    client = guarded_client(
        res.url_policy,
        timeout=httpx.Timeout(w.attempt_timeout),
        max_response_bytes=w.max_response_bytes,
        limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
    )
    deliverer = Deliverer(
        store=res.deliveries,
        registry=res.endpoints,
        callbacks=res.callback_secrets,
        client=client,
        queue=res.store.queue,
        settings=w,
        ops_secret=res.settings.alerts.ops_secret or None,
    )
    return deliverer, client


class Dispatcher:
    def __init__(self, res: Resources, deliverer: Deliverer, blocking: Redis, name: str) -> None:
        self._res = res
        self._deliverer = deliverer
        # XREADGROUP blocks: it needs a connection whose socket timeout outlasts the block.
        self._blocking = blocking
        self._name = name
        self._slots = asyncio.Semaphore(_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _ensure_group(self, stream: str) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            # From the start of the stream: nothing written before the group existed is lost.
            await self._blocking.xgroup_create(stream, GROUP, id="0", mkstream=True)

    async def run(self) -> None:
        stream = self._res.keys.outbox
        await self._ensure_group(stream)
        last_claim = 0.0
        while True:
            try:
                if time.monotonic() - last_claim > _CLAIM_IDLE_MS / 1000:
                    last_claim = time.monotonic()
                    await self._claim_abandoned(stream)
                batches = await self._blocking.xreadgroup(
                    GROUP, self._name, {stream: ">"}, count=_BATCH, block=_BLOCK_MS
                )
                for _, entries in batches or []:
                    await self._handle(stream, entries)
            except ResponseError as exc:
                # NOGROUP / UNBLOCKED: the stream went away (a Redis restart without
                # persistence, a flush). Recreate it and carry on.
                log.warning("dispatcher: %s; recreating the consumer group", exc)
                await self._ensure_group(stream)
            except (RedisError, OSError) as exc:
                log.warning("dispatcher: %s; retrying", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _claim_abandoned(self, stream: str) -> None:
        claimed = await self._blocking.xautoclaim(
            stream, GROUP, self._name, _CLAIM_IDLE_MS, start_id="0-0", count=_BATCH
        )
        if claimed and claimed[1]:
            log.warning("dispatcher: claimed %d abandoned outbox entries", len(claimed[1]))
            await self._handle(stream, claimed[1])

    async def _handle(self, stream: str, entries: list[Any]) -> None:
        """Record the deliveries of a batch of entries, then acknowledge the batch at once."""
        endpoints: dict[tuple[str, str], list[WebhookEndpoint]] = {}
        events = []
        for _, fields in entries:
            if fields:  # a claimed entry deleted meanwhile comes back empty
                event = {k.decode(): v.decode() for k, v in fields.items()}
                key = (event["app"], event["type"])
                if key not in endpoints:
                    endpoints[key] = await self._res.endpoints.for_event(*key)
                events.append((event, endpoints[key]))
        # Across try-ons in parallel; within one try-on in stream order, so its deliveries are
        # queued in the order its events happened.
        by_tryon: dict[str, list[tuple[dict[str, str], list[WebhookEndpoint]]]] = {}
        for event, found in events:
            by_tryon.setdefault(event.get("tryon") or event["id"], []).append((event, found))
        await asyncio.gather(*(self._fan_out_in_order(group) for group in by_tryon.values()))
        ids = [entry_id for entry_id, _ in entries]
        async with self._blocking.pipeline(transaction=False) as pipe:
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()

    async def _fan_out_in_order(
        self, group: list[tuple[dict[str, str], list[WebhookEndpoint]]]
    ) -> None:
        for event, found in group:
            await self.fan_out(event, found)

    async def fan_out(self, event: dict[str, str], endpoints: list[WebhookEndpoint]) -> None:
        """Record one delivery per target of the event, then start their first attempts."""
        now = time.time()
        targets: list[tuple[str, str, WebhookEndpoint | None]] = [
            (e.id, e.url, e) for e in endpoints
        ]
        # A callback URL has no `eventTypes`: like an endpoint without a filter it gets the
        # default subscription (terminal events), never `tryon.processing`.
        if event.get("callback") and event["type"] in DEFAULT_EVENT_TYPES:
            targets.append((callback_target(event["app"]), event["callback"], None))
        # A budget alert's copy for the ops endpoint (service/usage/alerts.py).
        ops_url = self._res.settings.alerts.ops_url
        if event.get("ops") and ops_url:
            targets.append((OPS_TARGET, ops_url, None))
        for target, url, endpoint in targets:
            delivery = Delivery(
                id=delivery_id(event["id"], target),
                event_id=event["id"],
                event_type=event["type"],
                app=event["app"],
                target=target,
                url=url,
                tryon_id=event.get("tryon") or None,
                body=event["body"],
                created_at=now,
                next_attempt_at=now,
                trace_id=event.get("trace") or None,
            )
            if await self._res.deliveries.create(delivery):
                await self.start(delivery, endpoint)

    async def start(self, delivery: Delivery, endpoint: WebhookEndpoint | None) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._first_attempt(delivery, endpoint))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _first_attempt(self, delivery: Delivery, endpoint: WebhookEndpoint | None) -> None:
        try:
            await self._deliverer.attempt(
                delivery.id, delivery=delivery, endpoint=endpoint, patience=_PATIENCE
            )
        except Exception:
            # The delivery is recorded and due: the sweep hands it to a job.
            log.exception("first attempt of %s failed", delivery.id)
        finally:
            self._slots.release()


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    deliverer: Deliverer = ctx["deliverer"]
    return await deliverer.attempt(delivery_id)


async def sweep_deliveries(res: Resources, deliverer: Deliverer) -> int:
    """Every pending delivery past its time gets a job (a worker died mid-attempt, a job was
    lost): nothing recorded is ever left behind."""
    grace = res.settings.webhooks.attempt_timeout + 5
    count = 0
    for did in await res.deliveries.due(time.time() - grace):
        delivery = await res.deliveries.get(did)
        if delivery is not None and delivery.status == "pending":
            await deliverer.schedule(delivery, 0.0)
            count += 1
    return count
