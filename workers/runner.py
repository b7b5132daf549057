"""One try-on, driven from whatever state it was left in to a terminal state.

The record in Redis is the state machine; this job only ever moves it forward, and every step
is written before the next one starts, so a job that is retried or picked up again after a
crash resumes instead of starting over:

    queued -> submitting -> running -> storing -> completed | failed  (canceled only from queued)

`storing`: Genlook completed the generation (the credit is spent) and the result is being
copied into the gateway's object store. Resuming it re-reads the generation for a fresh URL;
it never creates again. A copy that keeps failing ends RESULT_NOT_STORED after
RESULTS_COPY_ATTEMPTS tries (docs/results.md).

The one step that cannot be made safe is the create call itself: Genlook has no idempotency
key, so once a create *may* have reached Genlook and no answer came back, nobody can know
whether a credit was spent. We mark `create_started_at` right before sending. A job that finds
the marker without a generation id fails the try-on with UPSTREAM_OUTCOME_UNKNOWN instead of
creating again: at most one credit per accepted try-on, by construction (see docs/pipeline.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import cast

from redis.exceptions import RedisError
from service import logs
from service.accounts.directory import NoAccount, Upstream, refusal_reason
from service.accounts.registry import UnknownAccount
from service.genlook import errors as gl
from service.genlook.client import GenlookClient, Priority
from service.genlook.models import (
    Generation,
    ImageSource,
    KeepForDays,
    Output,
    Person,
    PersonImage,
    ProductImage,
    ProductInput,
    TryOnRequest,
)
from service.lanes import BATCH, DEFAULT_WEIGHT, Claim
from service.namespacing import DEFAULT_ACCOUNT, upstream_product_id, upstream_user_id
from service.photos import PhotoBusy, PhotoGone, StoredImage
from service.products import fingerprint
from service.resources import Resources
from service.results.fetch import FetchFailed, ResultGone, fetch_result
from service.results.objects import StoreUnavailable, object_key
from service.results.retention import retention_seconds
from service.results.reuse import Ended, Follow, Hit, completed_from
from service.retrying import backoff
from service.tryons.models import TERMINAL, ErrorInfo, StoredResult, TryOnRecord
from service.tryons.store import TryOnNotFound

from workers.shutdown import CreateGate
from workers.waiting import DurationModel

log = logging.getLogger("workers.runner")

_EXPIRED = "The photo expired; upload it again."
# A batch try-on finding its worker's batch slots full comes back this much later (any
# worker may take it then).
_BATCH_SLOT_WAIT = 0.5
_NOT_STORED = (
    "Genlook completed the try-on, but its result could not be copied into the gateway's "
    "store. An operator's retry resumes the copy without spending a credit."
)


class Finished(Exception):
    """A helper moved the try-on to a terminal state; the job is over."""

    def __init__(self, record: TryOnRecord) -> None:
        super().__init__(record.status)
        self.record = record


class Following(Exception):
    """An identical try-on is generating the same result: this one waits for it (its leader's
    worker completes it, or enqueues it again if the leader fails; service/results/reuse.py)."""


class RetryLater(Exception):
    """Stop this attempt; the job runs again after `delay` seconds and resumes."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PlannedProduct:
    payload: ProductInput
    cache_id: str | None  # upstream id whose cache entry this call confirms
    fingerprint: str
    is_reference: bool


class TryOnRunner:
    def __init__(
        self,
        res: Resources,
        durations: DurationModel,
        *,
        budget_s: float,
        gate: CreateGate | None = None,
    ) -> None:
        self._res = res
        self._durations = durations
        # Shutdown: which attempts may be cancelled and resumed elsewhere (workers/shutdown.py).
        self._gate = gate or CreateGate()
        # How long one job attempt may keep waiting before handing over to a fresh attempt
        # (it must end well within arq's job timeout).
        self._budget_s = budget_s
        g = res.settings.genlook
        self._poll_interval = 2.0 / g.clock_speed
        # Genlook's result URL from the answer that reported completion, handed to the copy
        # in the same attempt; never persisted (a resumed copy reads the generation again).
        self._result_urls: dict[str, str] = {}
        # Batch try-ons this worker holds now: capped so its other job slots stay free for
        # interactive ones (a batch of 1,000 would otherwise fill every slot).
        self._batch_running = 0

    # --- entry point --------------------------------------------------------------------------

    async def run(self, tryon_id: str, job_try: int = 1) -> str:
        store = self._res.store
        record = await store.get(tryon_id)
        if record is None:
            return "gone"
        logs.tryon_id.set(record.id)
        logs.trace_id.set(record.trace_id)
        logs.app_id.set(record.app)
        started = time.monotonic()
        w = self._res.settings.worker
        batch_slot = record.lane == BATCH and w.lanes and not record.is_terminal
        if batch_slot:
            if self._batch_running >= w.batch_jobs:
                raise RetryLater(_BATCH_SLOT_WAIT, "this worker's batch slots are full")
            self._batch_running += 1
        try:
            with self._gate.resumable():
                try:
                    status = await self._drive(record, started, job_try)
                except Following:
                    return "following"
        finally:
            if batch_slot:
                self._batch_running -= 1
        if record.reuse_key is not None and status in TERMINAL:
            await self._hand_over(tryon_id)
        return status

    async def _drive(self, record: TryOnRecord, started: float, job_try: int) -> str:
        if record.status == "queued" and record.reuse_key is not None:
            record = await self._claim(record)
        while not record.is_terminal:
            if record.unsent and time.time() > record.send_deadline:
                return (await self._deadline_exceeded(record)).status
            # A completed generation is paid for: its copy is bounded by its own attempts,
            # never cut by the deadline.
            if time.time() > record.deadline_at and record.status != "storing":
                # Sent: the credit is spent, and only the worker's bound ends the wait.
                if record.generation_id is None:
                    return (await self._outcome_unknown(record)).status
                return (await self._fail(record, "DEADLINE_EXCEEDED", "No result in time.")).status
            if self._gate.closed:
                # A stopping worker takes no step more: not a new job, nor the wait after a
                # create call it was let finish. Another worker resumes from the record.
                raise RetryLater(0.0, "worker stopping: another worker resumes it")
            try:
                if record.status == "queued":
                    record = await self._begin(record)
                elif record.status == "submitting":
                    record = await self._submit(record, job_try, started)
                elif record.status == "running":
                    record = await self._wait(record, started)
                elif record.status == "storing":
                    record = await self._store_result(record)
            except Finished as done:
                record = done.record
        return record.status

    # --- the result cache's single flight (service/results/reuse.py) ----------------------

    async def _claim(self, record: TryOnRecord) -> TryOnRecord:
        """Before any step: complete from a stored identical result, wait for the identical
        try-on generating it, or lead. Before the caller's deadline is checked: neither a
        reuse nor a wait can spend a credit; the worker's bound still ends a wait."""
        reuse = self._res.reuse
        claim = await reuse.claim(record)
        if isinstance(claim, Ended):
            # The leader completed, but its worker died before offering the result.
            await self._hand_over(claim.leader)
            claim = await reuse.claim(record)
        if isinstance(claim, Hit):
            return await self._res.store.update(record.id, completed_from(claim))
        if isinstance(claim, Follow):
            if time.time() < record.deadline_at:
                log.info("try-on %s: waiting for identical try-on %s", record.id, claim.leader)
                raise Following(claim.leader)
            return record  # past the worker's bound: the steps below end it
        await self._res.metrics.add("result_cache", result="miss")
        return record

    async def _hand_over(self, tryon_id: str) -> None:
        """A try-on that may lead others ended: offer its result and complete its waiters, or
        release its lead and enqueue its waiters again (failures are never reused)."""
        record = await self._res.store.get(tryon_id)
        if record is None or record.reuse_key is None or record.reused_from is not None:
            return
        reuse = self._res.reuse
        if record.status == "completed" and record.stored_result is not None:
            hit = Hit(record.id, record.stored_result)
            for waiter in await reuse.remember(record):
                await self._res.store.update(waiter, completed_from(hit))
            return
        for waiter in await reuse.release(record):
            await self._res.store.enqueue(waiter)

    # --- steps --------------------------------------------------------------------------------

    async def _begin(self, record: TryOnRecord) -> TryOnRecord:
        # The account is chosen with the step into `submitting`: one write for both.
        chosen = None if record.account is not None else (await self._pick(record)).id

        def to_submitting(r: TryOnRecord) -> TryOnRecord | None:
            if r.status != "queued":
                return None
            r.status = "submitting"
            r.started_at = r.started_at or time.time()
            r.account = r.account or chosen
            return r

        return await self._res.store.update(record.id, to_submitting)

    async def _submit(self, record: TryOnRecord, job_try: int, started: float) -> TryOnRecord:
        if record.create_started_at is not None and record.generation_id is None:
            return await self._outcome_unknown(record)
        log.info("try-on %s: submitting (try %d, rev of marker clear)", record.id, job_try)
        record, up = await self._choose(record)
        accounts = self._res.accounts
        await accounts.sending(up.id, record.id)
        try:
            return await self._submit_through(record, up, job_try, started)
        finally:
            await accounts.sent(up.id, record.id)

    async def _submit_through(
        self, record: TryOnRecord, up: Upstream, job_try: int, started: float
    ) -> TryOnRecord:
        person = await self._person(record, up, job_try, started)
        plan = await self._plan_product(record, up)
        request = TryOnRequest(
            products=[plan.payload],
            person=person,
            external_user_id=upstream_user_id(record.app, record.external_user_id),
            output=self._output(record),
        )
        async with self._turn(record, up, started):
            if self._gate.closed:
                raise RetryLater(0.0, "worker stopping: another worker sends the create")
            if time.time() > record.send_deadline:
                # Granted at the deadline itself: a create sent now would spend a credit
                # nobody waits for (promise 8).
                return await self._deadline_exceeded(record)
            with self._gate.create_call():
                return await self._send_create(record, up, plan, request, job_try)

    @contextlib.asynccontextmanager
    async def _turn(
        self, record: TryOnRecord, up: Upstream, started: float, *, laned: bool = True
    ) -> AsyncIterator[None]:
        """This try-on's turn for a cell of the budget for its next call: its create's in its
        lane (`laned`, docs/lanes.md), its photo's upload at the next free cell. arq's job
        timeout would cut a call sent late in the attempt, as surely as a kill: the wait may use
        this attempt's time only up to the hand-over point, and never past the try-on's send
        deadline, after which no call is made for it (its shopper left: the cell goes to one
        still waiting)."""
        attempt_left = self._budget_s - (time.monotonic() - started)
        send_left = record.send_deadline - time.time()
        waiting = asyncio.timeout(max(0.0, min(attempt_left, send_left)))
        claim = await self._lane_claim(record) if laned else None
        try:
            async with waiting, up.hooks.reserved(Priority.START, claim):
                waiting.reschedule(None)
                yield
        except TimeoutError:
            if not waiting.expired():
                raise
            if time.time() > record.send_deadline:
                raise Finished(await self._deadline_exceeded(record)) from None
            raise RetryLater(0.0, "no budget cell in this attempt's time") from None

    async def _choose(self, record: TryOnRecord) -> tuple[TryOnRecord, Upstream]:
        """The account this try-on goes through: the one it was given while that one is
        usable, else the first usable one of its app's pool (a failover: nothing was created
        on the one before, so its photo is uploaded again to the new one)."""
        accounts = self._res.accounts
        if record.account is not None:
            try:
                if await accounts.usable(record.account):
                    return record, await accounts.upstream(record.account)
            except UnknownAccount:
                pass
        up = await self._pick(record)
        if up.id != record.account:
            log.info("try-on %s: account %s -> %s", record.id, record.account, up.id)
            record = await self._mark(record, account=up.id, upstream_image_id=None)
        return record, up

    async def _pick(self, record: TryOnRecord) -> Upstream:
        """An account of the app's pool for this try-on, noted as one the app used (erase)."""
        try:
            up = await self._res.accounts.choose(record.app)
        except NoAccount as exc:
            raise Finished(await self._fail(record, exc.code, exc.message)) from None
        await self._res.accounts.registry.note_used(record.app, up.id)
        return up

    async def _failover(self, record: TryOnRecord, up: Upstream, exc: gl.APIError) -> None:
        """An answer proving the account can do nothing (402, 401) takes it out of its pools;
        the try-on goes on through another usable account of its pool (RetryLater), if any."""
        reason = refusal_reason(exc)
        if reason is None:
            return
        await self._res.accounts.take_out(up.id, reason)
        if await self._res.accounts.has_usable(record.app):
            raise RetryLater(0.0, f"account {up.id} refused ({reason}): failing over")

    async def _sent_upstream(self, record: TryOnRecord) -> Upstream:
        """The account a sent try-on's generation lives in (a record from before accounts
        existed: the default one)."""
        try:
            return await self._res.accounts.upstream(record.account or DEFAULT_ACCOUNT)
        except UnknownAccount:
            message = "The upstream account this try-on was sent to was deleted."
            raise Finished(await self._fail(record, "UPSTREAM_ACCOUNT_DELETED", message)) from None

    async def _send_create(
        self,
        record: TryOnRecord,
        up: Upstream,
        plan: PlannedProduct,
        request: TryOnRequest,
        job_try: int,
    ) -> TryOnRecord:
        """The create call's window: marker, call, and its outcome recorded."""
        record = await self._mark(record, create_started_at=time.time())
        if record.is_terminal:
            # Canceled while waiting for its budget cell (the marker was not written).
            return record
        log.info("try-on %s: create sent (try %d)", record.id, job_try)
        try:
            generation = await self._create(up.client, request)
        except gl.GenlookError as exc:
            failed = partial(self._create_failed, record, up, plan, exc, job_try)
            return await _through_redis_outage(failed)
        recorded = await _through_redis_outage(partial(self._record_generation, record, generation))
        await self._remember_product(record.app, up, plan, generation)
        return recorded

    async def _create_failed(
        self,
        record: TryOnRecord,
        up: Upstream,
        plan: PlannedProduct,
        exc: gl.GenlookError,
        job_try: int,
    ) -> TryOnRecord:
        """Decide from the error whether the create may have happened, and what comes next."""
        log.info("try-on %s: create failed: %s %s", record.id, type(exc).__name__, exc)
        if isinstance(exc, gl.ProductNotFound) and plan.is_reference:
            # The cached product expired or was deleted upstream; nothing was created.
            # Resend inline: the cache is corrected and no credit is lost.
            await self._forget_product(record.app, up, plan)
            return await self._mark(record, create_started_at=None)
        if (
            isinstance(exc, gl.ImageNotFound)
            and record.person.image_id is not None
            and record.photo_reuploads < 1
        ):
            # Genlook lost the photo (retention, an erase elsewhere): nothing was created.
            # Upload it again, once; a second loss is reported.
            await self._forget_photo(record, up)
            return await self._mark(
                record,
                create_started_at=None,
                upstream_image_id=None,
                photo_reuploads=record.photo_reuploads + 1,
            )
        if isinstance(exc, gl.OutcomeUnknown):
            return await self._outcome_unknown(record)
        if isinstance(exc, gl.ServerError) and not (exc.status == 503 and exc.code):
            # 500 is "an unexpected condition": Genlook may have stored the generation before
            # failing. 502/504 come from a proxy that may have passed the request on.
            return await self._outcome_unknown(record)
        if isinstance(exc, gl.ServerError | gl.RateLimited | gl.RequestNotSent):
            # A 503 from Genlook itself (refused, not started), a 429, or never sent at all.
            await self._mark(record, create_started_at=None)
            delay = getattr(exc, "retry_after", None) or backoff(job_try)
            raise RetryLater(delay, type(exc).__name__) from exc
        if isinstance(exc, gl.APIError) and refusal_reason(exc) is not None:
            # 402 or 401: refused before anything was created, so another account of the
            # pool may take the try-on (the marker is cleared first: nothing was sent there).
            record = await self._mark(record, create_started_at=None)
            await self._failover(record, up, exc)
        if isinstance(exc, gl.APIError):
            # Genlook refused the request: nothing was created. The marker goes with the
            # failure, so the record says "no credit spent" and an operator may retry it.
            code = exc.code or f"UPSTREAM_{exc.status}"
            return await self._fail(record, code, exc.message, create_started_at=None)
        # InvalidResponse: a 2xx we could not read. A generation may exist; never resend.
        return await self._outcome_unknown(record)

    async def _lane_claim(self, record: TryOnRecord) -> Claim | None:
        """The create's place in the lanes: its lane, its app and the app's weight (read now,
        so a weight changed by ops applies to queued try-ons); None with lanes off."""
        if not self._res.settings.worker.lanes:
            return None
        app = await self._res.apps.get(record.app)
        weight = app.policy.lane_weight if app is not None else DEFAULT_WEIGHT
        return Claim(record.lane, record.app, weight)

    async def _deadline_exceeded(self, record: TryOnRecord) -> TryOnRecord:
        return await self._fail(
            record, "DEADLINE_EXCEEDED", "Not sent upstream before its deadline; no credit spent."
        )

    async def _outcome_unknown(self, record: TryOnRecord) -> TryOnRecord:
        return await self._fail(
            record,
            "UPSTREAM_OUTCOME_UNKNOWN",
            "The create call to Genlook was interrupted; it may or may not have run. "
            "It is not retried so that no second credit is spent.",
        )

    async def _create(self, client: GenlookClient, request: TryOnRequest) -> Generation:
        if self._res.settings.genlook.wait_strategy == "sync":
            return await client.create_try_on_sync(request)
        created = await client.create_try_on(request)
        now = datetime.now(UTC)
        return Generation(
            generation_id=created.generation_id,
            status=created.status,
            created_at=now,
            updated_at=now,
            product_external_id=created.product_external_id,
        )

    async def _wait(self, record: TryOnRecord, job_started: float) -> TryOnRecord:
        assert record.generation_id is not None
        client = (await self._sent_upstream(record)).client
        submitted = record.create_started_at or record.started_at or time.time()
        while True:
            elapsed = time.time() - submitted
            delay = await self._durations.next_poll(elapsed, self._poll_interval)
            if time.monotonic() - job_started + delay > self._budget_s:
                raise RetryLater(delay, "handing the wait over to a fresh job attempt")
            if time.time() + delay > record.deadline_at:
                delay = max(0.0, record.deadline_at - time.time())
            await asyncio.sleep(delay)
            try:
                generation = await client.get_generation(record.generation_id)
            except (gl.TransportError, gl.ServerError, gl.RateLimited) as exc:
                log.info("status poll of %s failed: %s", record.id, type(exc).__name__)
                if time.time() > record.deadline_at:
                    return record
                continue
            except gl.APIError as exc:
                return await self._fail(record, exc.code or f"UPSTREAM_{exc.status}", exc.message)
            if generation.is_terminal:
                return await self._record_generation(record, generation)
            if time.time() > record.deadline_at:
                return record

    # --- the result's copy ----------------------------------------------------------------

    async def _store_result(self, record: TryOnRecord) -> TryOnRecord:
        """Copy the result from Genlook into the gateway's store, then complete the try-on."""
        settings = self._res.settings
        url = self._result_urls.pop(record.id, None)
        try:
            data, content_type = await self._fetch_result(record, url)
            stored = await self._res.results.put(
                object_key(record.app, record.id),
                data,
                content_type=content_type,
                expires_at=time.time() + retention_seconds(settings, record.keep_for_days),
            )
        except gl.RateLimited as exc:
            # The budget's pause, not a fault of the copy: no attempt is counted.
            raise RetryLater(exc.retry_after or backoff(1), "result copy: rate limited") from exc
        except (ResultGone, FetchFailed, StoreUnavailable, gl.GenlookError) as exc:
            return await self._copy_failed(record, f"{type(exc).__name__}: {exc}")
        try:
            return await self._complete(record, stored)
        except TryOnNotFound:
            # Erased while the copy ran: the erase found no object to delete yet, so the
            # copy takes its own back rather than leave the user's image until the sweep.
            await self._res.results.delete([stored.key])
            raise

    async def _fetch_result(self, record: TryOnRecord, url: str | None) -> tuple[bytes, str]:
        """The image from the URL the completion gave; if there is none (a resumed copy) or it
        no longer loads, from a fresh URL read from the generation (no credit: a read)."""
        limits = self._res.settings.results
        http = self._res.result_http
        if url is not None:
            try:
                return await fetch_result(
                    http, url, max_bytes=limits.max_bytes, within=limits.fetch_timeout
                )
            except ResultGone:
                log.info("try-on %s: Genlook's result URL expired; reading it again", record.id)
        assert record.generation_id is not None
        client = (await self._sent_upstream(record)).client
        generation = await client.get_generation(record.generation_id)
        if generation.status != "COMPLETED" or not generation.result_image_url:
            raise ResultGone(f"the generation is {generation.status} without a result")
        return await fetch_result(
            http,
            generation.result_image_url,
            max_bytes=limits.max_bytes,
            within=limits.fetch_timeout,
        )

    async def _copy_failed(self, record: TryOnRecord, reason: str) -> TryOnRecord:
        attempts = record.copy_attempts + 1
        log.warning("try-on %s: result copy %d failed: %s", record.id, attempts, reason)
        if attempts >= self._res.settings.results.copy_attempts:
            return await self._fail(
                record, "RESULT_NOT_STORED", _NOT_STORED, copy_attempts=attempts
            )
        await self._mark(record, copy_attempts=attempts)
        raise RetryLater(backoff(attempts, base=1.0, cap=60.0), f"result copy: {reason}")

    async def _complete(self, record: TryOnRecord, stored: StoredResult) -> TryOnRecord:
        def apply(r: TryOnRecord) -> TryOnRecord | None:
            if r.status != "storing":
                return None
            r.status = "completed"
            r.stored_result = stored
            r.completed_at = time.time()
            return r

        return await _through_redis_outage(partial(self._res.store.update, record.id, apply))

    # --- pieces -------------------------------------------------------------------------------

    async def _person(
        self, record: TryOnRecord, up: Upstream, job_try: int, started: float
    ) -> Person:
        if record.person.url is not None:
            return Person(image=PersonImage(source=ImageSource(url=record.person.url)))
        assert record.person.image_id is not None
        if record.upstream_image_id is None:
            image = await self._res.photos.get(record.app, record.person.image_id)
            if image is None:
                raise Finished(await self._fail(record, "IMAGE_EXPIRED", _EXPIRED))
            upload = make_uploader(up.client, image)

            async def upload_in_turn(data: bytes) -> str:
                # Not laned (docs/lanes.md): the try-on's place in its lane is its create's.
                async with self._turn(record, up, started, laned=False):
                    return await upload(data)

            try:
                upstream = await self._res.photos.upstream_id(up.digest, image, upload_in_turn)
            except PhotoGone:
                raise Finished(await self._fail(record, "IMAGE_EXPIRED", _EXPIRED)) from None
            except PhotoBusy as exc:
                raise RetryLater(0.5, "photo upload in progress elsewhere") from exc
            except (gl.TransportError, gl.RateLimited, gl.ServerError) as exc:
                raise RetryLater(backoff(job_try), "photo upload") from exc
            except gl.APIError as exc:
                await self._failover(record, up, exc)
                failed = await self._fail(record, exc.code or "INVALID_IMAGE", exc.message)
                raise Finished(failed) from None
            record = await self._mark(record, upstream_image_id=upstream)
        assert record.upstream_image_id is not None
        return Person(image=PersonImage(source=ImageSource(id=record.upstream_image_id)))

    async def _plan_product(self, record: TryOnRecord, up: Upstream) -> PlannedProduct:
        d = record.product
        fp = fingerprint(d)
        cache = self._res.products
        full = ProductInput(
            title=d.title,
            description=d.description,
            images=[
                ProductImage(source=ImageSource(url=url), classifications=c)
                for url, c in zip(
                    d.image_urls, d.classifications or [None] * len(d.image_urls), strict=True
                )
            ],
        )
        if d.external_id is not None:
            upstream_id = upstream_product_id(record.app, d.external_id)
            if await cache.known(up.digest, upstream_id, fp):
                await self._res.metrics.add("product_cache", result="hit")
                return PlannedProduct(ProductInput(external_id=upstream_id), upstream_id, fp, True)
            await self._res.metrics.add("product_cache", result="miss")
            inline = ProductInput(
                external_id=upstream_id,
                title=full.title,
                description=full.description,
                images=full.images,
            )
            return PlannedProduct(inline, upstream_id, fp, False)
        anon = await cache.oneshot_id(up.digest, record.app, fp)
        if anon is not None:
            return PlannedProduct(ProductInput(external_id=anon), None, fp, True)
        return PlannedProduct(full, None, fp, False)

    async def _forget_photo(self, record: TryOnRecord, up: Upstream) -> None:
        assert record.person.image_id is not None
        image = await self._res.photos.get(record.app, record.person.image_id)
        if image is not None and record.upstream_image_id is not None:
            # Only the imageId this try-on sent: another try-on may have uploaded anew already.
            await self._res.photos.forget_upstream(up.digest, image, record.upstream_image_id)

    async def _forget_product(self, app: str, up: Upstream, plan: PlannedProduct) -> None:
        products = self._res.products
        if plan.cache_id is not None:
            await products.forget(up.digest, plan.cache_id)
        else:
            await products.forget_oneshot(up.digest, app, plan.fingerprint)

    async def _remember_product(
        self, app: str, up: Upstream, plan: PlannedProduct, generation: Generation
    ) -> None:
        products = self._res.products
        if plan.cache_id is not None:
            await products.remember(up.digest, plan.cache_id, plan.fingerprint)
        elif generation.product_external_id:
            await products.remember_oneshot(
                up.digest, app, plan.fingerprint, generation.product_external_id
            )

    @staticmethod
    def _output(record: TryOnRecord) -> Output | None:
        if record.watermark is None and record.keep_for_days is None and record.ai_label is None:
            return None
        return Output(
            watermark=record.watermark,
            keep_for_days=cast(KeepForDays | None, record.keep_for_days),
            ai_label=record.ai_label,
        )

    # --- writes -------------------------------------------------------------------------------

    async def _mark(self, record: TryOnRecord, **fields: object) -> TryOnRecord:
        def apply(r: TryOnRecord) -> TryOnRecord | None:
            if r.is_terminal:
                return None
            for name, value in fields.items():
                setattr(r, name, value)
            return r

        return await self._res.store.update(record.id, apply)

    async def _record_generation(self, record: TryOnRecord, generation: Generation) -> TryOnRecord:
        def apply(r: TryOnRecord) -> TryOnRecord | None:
            if r.is_terminal:
                return None
            r.generation_id = generation.generation_id
            r.upstream_status = generation.status
            if generation.status == "COMPLETED":
                r.status = "storing"
            elif generation.status == "FAILED":
                r.status = "failed"
                r.error = ErrorInfo(
                    code=generation.error_code or "GENERATION_FAILED",
                    message=generation.error_message or "The generation failed.",
                )
                r.completed_at = time.time()
            else:
                r.status = "running"
            return r

        if generation.status == "COMPLETED" and generation.result_image_url:
            self._result_urls[record.id] = generation.result_image_url
        updated = await self._res.store.update(record.id, apply)
        log.info("try-on %s: generation %s %s", record.id, generation.generation_id, updated.status)
        if generation.is_terminal:
            speed = self._res.settings.genlook.clock_speed
            took = (generation.updated_at - generation.created_at).total_seconds() / speed
            await self._durations.observe(max(took, 0.0))
        return updated

    async def _fail(
        self, record: TryOnRecord, code: str, message: str, **fields: object
    ) -> TryOnRecord:
        def apply(r: TryOnRecord) -> TryOnRecord | None:
            if r.is_terminal:
                return None
            for name, value in fields.items():
                setattr(r, name, value)
            r.status = "failed"
            r.error = ErrorInfo(code=code, message=message)
            r.completed_at = time.time()
            return r

        return await self._res.store.update(record.id, apply)


# A Redis restart or failover takes seconds; the create's answer waits that long to be written.
_OUTAGE_PATIENCE = 30.0


async def _through_redis_outage(write: Callable[[], Awaitable[TryOnRecord]]) -> TryOnRecord:
    """Write the create call's outcome, which only this process knows: lost to a Redis outage,
    the next attempt could only report UPSTREAM_OUTCOME_UNKNOWN (a credit spent for nothing).
    Every write it retries is a compare-and-set from the current record, so repeating is safe."""
    give_up = time.monotonic() + _OUTAGE_PATIENCE
    while True:
        try:
            return await write()
        except (RedisError, OSError) as exc:
            if time.monotonic() > give_up:
                raise
            log.warning("create outcome not written yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(0.5)


def make_uploader(client: GenlookClient, image: StoredImage) -> Callable[[bytes], Awaitable[str]]:
    async def upload(data: bytes) -> str:
        uploaded = await client.upload_image(
            data,
            filename=f"photo.{image.content_type.rsplit('/', 1)[-1]}",
            content_type=image.content_type,
            crop=image.crop,
            external_user_id=upstream_user_id(image.app, image.external_user_id),
            keep_for_days=cast(KeepForDays, image.keep_for_days),
        )
        return uploaded.image_id

    return upload
