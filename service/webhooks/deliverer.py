"""One delivery attempt, and what follows from its outcome.

Used for first attempts (by the dispatcher, within milliseconds of the event) and for retries
(arq jobs, one per scheduled attempt). Every attempt is recorded; 2xx is success; 410 disables
the endpoint; a redirect is a failure with a hint (never followed); 429/503 honour Retry-After;
anything else waits for the next slot of the published schedule, then the delivery is failed.
Each attempt has one deadline, however slowly the receiver answers, and a delivery never has
two attempts in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx
import msgspec

from service import jobs, logs
from service.retrying import parse_retry_after
from service.settings import WebhookSettings
from service.webhooks import signing
from service.webhooks.callback_secrets import CallbackSecrets
from service.webhooks.deliveries import (
    ADMITTED,
    IN_FLIGHT,
    NO_SLOT,
    OPS_TARGET,
    Attempt,
    Delivery,
    DeliveryStore,
)
from service.webhooks.models import WebhookEndpoint
from service.webhooks.registry import EndpointRegistry
from service.webhooks.schedule import MAX_ATTEMPTS, next_delay
from service.webhooks.ssrf import ForbiddenTarget

log = logging.getLogger("service.webhooks")

USER_AGENT = "tryon-gateway-webhooks/1"
_EXCERPT = 512
# A delivery waiting behind an earlier event of the same try-on, or for a free slot: in-process
# it asks again after _SPIN, doubling up to _SPIN_MAX; a job asks again after _WAIT.
_WAIT = 0.25
_SPIN = 0.005
_SPIN_MAX = 0.1
# A job may run this much before its delivery's next attempt is due (clocks of two hosts).
_EARLY = 1.0


def deliver_job_id(delivery_id: str, attempt: int) -> str:
    return f"dlv:{delivery_id}:{attempt}"


class Deliverer:
    def __init__(
        self,
        *,
        store: DeliveryStore,
        registry: EndpointRegistry,
        callbacks: CallbackSecrets,
        client: httpx.AsyncClient,
        queue: jobs.JobQueue,
        settings: WebhookSettings,
        ops_secret: str | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._callbacks = callbacks
        self._client = client
        self._queue = queue
        self._settings = settings
        # Signs deliveries to the ops endpoint (ALERTS_OPS_SECRET); None: there is none.
        self._ops_secret = ops_secret
        self._rng = random.Random()

    async def schedule(self, delivery: Delivery, delay: float) -> None:
        await self._queue.enqueue(
            jobs.DELIVER,
            delivery.id,
            job_id=deliver_job_id(delivery.id, delivery.attempts),
            defer=delay,
        )

    async def attempt(
        self,
        delivery_id: str,
        *,
        delivery: Delivery | None = None,
        endpoint: WebhookEndpoint | None = None,
        patience: float = 0.0,
    ) -> str:
        """Make the delivery's next attempt if it is its turn; returns what happened.

        The dispatcher passes the delivery and endpoint it has just read, saving the round
        trips on the first attempt (the one whose latency receivers see), and waits up to
        `patience` seconds in-process for the target's slot or the try-on's turn before handing
        the delivery to a job."""
        if delivery is None:
            delivery = await self._store.get(delivery_id)
        if delivery is None or delivery.status != "pending":
            return "settled"
        if (delivery.next_attempt_at or 0) > time.time() + _EARLY:
            # A job from the sweep that ran just after the attempt it was meant to replace
            # finished: the schedule decides when the next one goes, and has its job queued.
            return "not due"
        target = await self._target(delivery, endpoint)
        if isinstance(target, str):
            return await self._settle(delivery, "failed", target, None)
        url, secrets, extra = target
        # Outlives the attempt's deadline (`_send`), so a live attempt keeps its slot and no
        # second one is admitted beside it; only a dead worker's slot expires.
        lease = self._settings.attempt_timeout + 5
        give_up = time.monotonic() + patience
        pause = _SPIN
        limit = self._settings.endpoint_concurrency
        while (verdict := await self._store.admit(delivery, limit, lease)) != ADMITTED:
            if verdict == IN_FLIGHT:
                # Never a second attempt beside one in flight (a sweep or a late job): that
                # one records its outcome and schedules the next.
                return "in flight"
            if time.monotonic() + pause > give_up:
                await self._wait(delivery)
                return "busy" if verdict == NO_SLOT else "waiting"
            await asyncio.sleep(pause)
            pause = min(pause * 2, _SPIN_MAX)
        logs.trace_id.set(delivery.trace_id)
        logs.tryon_id.set(delivery.tryon_id)
        logs.app_id.set(delivery.app)
        try:
            attempt = await self._send(delivery, url, secrets, extra)
        except BaseException:
            await self._store.release_slot(delivery)
            raise
        outcome = await self._after(delivery, attempt)
        logs.event(log, "webhook.attempt", delivery=delivery.id, target=delivery.target,
                   event=delivery.event_type, status=attempt.status, error=attempt.error,
                   ms=attempt.duration_ms, outcome=outcome)  # fmt: skip
        return outcome

    async def _wait(self, delivery: Delivery) -> None:
        # A fresh job id each time: the job running now still holds its own id.
        job_id = f"dlv-wait:{delivery.id}:{time.time_ns()}"
        await self._queue.enqueue(jobs.DELIVER, delivery.id, job_id=job_id, defer=_WAIT)

    async def _target(
        self, delivery: Delivery, endpoint: WebhookEndpoint | None
    ) -> tuple[str, list[str], dict[str, str]] | str:
        """(url, signing secrets, extra headers), or why there is nowhere to deliver."""
        if delivery.target == OPS_TARGET:
            if self._ops_secret is None:
                return "no ops endpoint secret (ALERTS_OPS_SECRET) is set"
            return delivery.url, [self._ops_secret], {}
        if not delivery.to_endpoint:
            return delivery.url, await self._callbacks.active(delivery.app), {}
        if endpoint is None or endpoint.id != delivery.target:
            endpoint = await self._registry.get(delivery.app, delivery.target)
        if endpoint is None:
            return "the endpoint was deleted"
        if not endpoint.enabled:
            return f"the endpoint is disabled ({endpoint.disabled_reason or 'manual'})"
        return endpoint.url, self._registry.active_secrets(endpoint), dict(endpoint.headers)

    async def _send(
        self, delivery: Delivery, url: str, secrets: list[str], extra: dict[str, str]
    ) -> Attempt:
        body = delivery.body.encode()
        headers = {
            **extra,
            **signing.headers(delivery.id, int(time.time()), body, secrets),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        if delivery.trace_id:
            headers["traceparent"] = logs.traceparent(delivery.trace_id)
        started = time.time()
        answer: httpx.Response | None = None
        excerpt = bytearray()
        timeout = self._settings.attempt_timeout
        try:
            # One deadline for the whole attempt: httpx's timeouts bound each read, so a
            # receiver dripping its answer a byte at a time would otherwise hold it for ever.
            async with asyncio.timeout(timeout):
                async with self._client.stream("POST", url, content=body, headers=headers) as r:
                    answer = r
                    await _read_excerpt(r, excerpt)
        except TimeoutError:
            if answer is None:
                error = f"timeout: no answer within {timeout:g} s (WEBHOOK_ATTEMPT_TIMEOUT)"
                return Attempt(at=started, duration_ms=_ms(started), error=error)
            # The status came in time; the rest of the body, only kept as an excerpt, did not.
        except ForbiddenTarget as exc:
            return Attempt(at=started, duration_ms=_ms(started), error=f"{exc.code}: {exc}")
        except httpx.TimeoutException as exc:
            return Attempt(
                at=started, duration_ms=_ms(started), error=f"timeout ({type(exc).__name__})"
            )
        except httpx.HTTPError as exc:
            return Attempt(at=started, duration_ms=_ms(started), error=type(exc).__name__)
        assert answer is not None  # each way out without an answer has returned above
        return _judged(answer, excerpt, started)

    async def _after(self, delivery: Delivery, attempt: Attempt) -> str:
        delivery.attempts += 1
        now = time.time()
        if attempt.status is not None and 200 <= attempt.status < 300:
            return await self._settle(delivery, "succeeded", None, attempt)
        if attempt.status == 410 and delivery.to_endpoint:
            await self._registry.disable(delivery.app, delivery.target, "410 Gone from receiver")
            return await self._settle(
                delivery, "failed", "410 Gone: the endpoint was disabled", attempt
            )
        delay = next_delay(
            delivery.attempts,
            retry_after=attempt.retry_after,
            scale=self._settings.time_scale,
            rng=self._rng,
        )
        await self._disable_if_failing_for_days(delivery, now)
        if delay is None:
            error = f"{attempt.error}; gave up after {MAX_ATTEMPTS} attempts"
            return await self._settle(delivery, "failed", error, attempt)
        delivery.next_attempt_at = now + delay
        delivery.last_error = attempt.error
        logged = msgspec.structs.replace(attempt, next_attempt_at=delivery.next_attempt_at)
        await self._store.record(delivery, logged)
        await self.schedule(delivery, delay)
        return "retrying"

    async def _disable_if_failing_for_days(self, delivery: Delivery, now: float) -> None:
        since = await self._store.failing_since(delivery.target, now)
        limit = self._settings.disable_after_days * 86_400 / self._settings.time_scale
        if delivery.to_endpoint and now - since > limit:
            reason = f"failing since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}"
            log.warning("webhook endpoint %s disabled: %s", delivery.target, reason)
            await self._registry.disable(delivery.app, delivery.target, reason)

    async def _settle(
        self, delivery: Delivery, status: str, error: str | None, attempt: Attempt | None
    ) -> str:
        delivery.status = "succeeded" if status == "succeeded" else "failed"
        delivery.next_attempt_at = None
        delivery.last_error = error
        following = await self._store.record(delivery, attempt)
        if following is not None:
            job_id = f"dlv-next:{following}:{time.time_ns()}"
            await self._queue.enqueue(jobs.DELIVER, following, job_id=job_id)
        return delivery.status


async def _read_excerpt(response: httpx.Response, into: bytearray) -> None:
    """The start of the body, kept for the attempt log. Once the status is in, the body cannot
    change the verdict: a receiver that sends more than the transport's cap
    (`ResponseTooLarge`) or drops the connection mid-body has still answered."""
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in response.aiter_raw():
            into += chunk
            if len(into) >= _EXCERPT:
                return


def _judged(answer: httpx.Response, excerpt: bytearray, started: float) -> Attempt:
    """The attempt as recorded, from the receiver's status line and the start of its body."""
    status = answer.status_code
    error = None
    if 300 <= status < 400:
        location = answer.headers.get("location")
        error = f"redirect to {location!r} not followed: register the final URL"
    elif not 200 <= status < 300:
        error = f"HTTP {status}"
    retry_after = answer.headers.get("retry-after") if status in (429, 503) else None
    return Attempt(
        at=started,
        duration_ms=_ms(started),
        status=status,
        error=error,
        response=bytes(excerpt[:_EXCERPT]).decode("utf-8", "replace") or None,
        retry_after=parse_retry_after(retry_after),
    )


def _ms(started: float) -> float:
    return round((time.time() - started) * 1000, 1)
