"""Accepting a try-on: what a caller may ask, the credits it reserves, the photo it sent inline,
and the one script that records and enqueues it. Every HTTP surface that starts try-ons calls
`TryOnIntake.accept`; it raises domain errors (service/domain_errors.py) and answers with the
record and whether it replayed an earlier request with the same Idempotency-Key.

Order matters for promise 5 (bad input changes nothing): every check that can refuse runs
before a counter is taken or a photo stored, and whatever was reserved is given back when the
accept does not go through, or replays a try-on that was counted already.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import NamedTuple

from service.access.browser import browser_tryon
from service.access.quotas import Quotas
from service.auth import Principal, upload_limits
from service.autopipeline import AutoPipeline
from service.domain_errors import Conflict, InvalidInput, LimitReached
from service.imaging import sniff
from service.keys import Keys
from service.lanes import INTERACTIVE, Lane
from service.namespacing import end_user_idempotency_key
from service.photos import PhotoStore, StoredImage
from service.results.reuse import ResultReuse, completed_from, reuse_key
from service.tryons.intake import build_record
from service.tryons.lookups import Expected, LookupCache, StaleLookup
from service.tryons.models import PersonDef, TryOnCreate, TryOnRecord
from service.tryons.store import IdempotencyConflict, TryOnNotFound, TryOnStore, fingerprint
from service.webhooks.ssrf import UrlPolicy, check_callback_url

# Stands for the photo of a multipart request until it is stored: its image id is known only
# then, and the record is built (and checked) before.
_PENDING_UPLOAD = "pending-upload"
MAX_IDEMPOTENCY_KEY = 255


class Accepted(NamedTuple):
    record: TryOnRecord
    # True: an earlier request with the same Idempotency-Key and body made this try-on.
    replayed: bool


class BatchPart(NamedTuple):
    """A try-on accepted as one of a batch's (service/batches/)."""

    batch_id: str
    # The batch's quota reservation, taken for all its try-ons at once: each holds one unit.
    counters: list[str]
    # Whether the try-on's own events go to webhooks (the batch's `batch.completed` does).
    webhooks: bool
    # Seconds before its job is due: a batch's jobs come due at about the budget's pace, not
    # all at once (docs/lanes.md, "Worker slots").
    defer: float = 0.0


def send_deadline(principal: Principal, requested: float | None, most: float) -> float | None:
    """Seconds after acceptance past which the try-on is not sent upstream, or None for the
    worker's bound alone: the request's `deadlineSeconds`, else for a browser its app's
    default. Capped at `most` (WORKER_TRYON_DEADLINE), which no try-on outlives anyway: a page
    asking for longer than the gateway keeps anything gets that, not a refusal."""
    seconds = requested
    if seconds is None and principal.is_browser and principal.policy is not None:
        seconds = principal.policy.browser_deadline_seconds
    return None if seconds is None else min(seconds, most)


def check_idempotency_key(key: str) -> None:
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            "VALIDATION_FAILED", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters."
        )


def idempotency_scope(principal: Principal, key: str, batch: BatchPart | None = None) -> str:
    """The one place an Idempotency-Key becomes the key it is stored under: a browser's is
    scoped to its end user, so one user's key never replays another's try-on; a batch item's
    to its batch, behind a NUL no HTTP header can carry, so no caller's key meets it."""
    if batch is not None:
        return f"\x00batch:{batch.batch_id}:{key}"
    if principal.is_browser:
        return end_user_idempotency_key(principal.external_user_id, key)
    return key


def reuse_allowed(principal: Principal, body: TryOnCreate) -> bool:
    """Whether the try-on may complete from (and offer) a stored identical result: unless the
    request says `reuse: false` or its app's policy turned the result cache off."""
    if body.reuse is False:
        return False
    return principal.policy is None or principal.policy.result_cache


class TryOnIntake:
    def __init__(
        self,
        *,
        store: TryOnStore,
        photos: PhotoStore,
        quotas: Quotas,
        pipeline: AutoPipeline,
        keys: Keys,
        lookups: LookupCache,
        url_policy: UrlPolicy,
        idempotency_ttl: float,
        retention: float,
        deadline: float,
        reuse: ResultReuse,
    ) -> None:
        self._store = store
        self._photos = photos
        self._quotas = quotas
        self._pipeline = pipeline
        self._keys = keys
        self._lookups = lookups
        self._url_policy = url_policy
        self._idempotency_ttl = idempotency_ttl
        self._retention = retention
        self._deadline = deadline
        self._reuse = reuse

    async def accept(
        self,
        principal: Principal,
        body: TryOnCreate,
        *,
        raw: bytes,
        photo: bytes | None = None,
        photo_key: str | None = None,
        idempotency_key: str | None = None,
        lane: Lane = INTERACTIVE,
        batch: BatchPart | None = None,
    ) -> Accepted:
        """Record and enqueue the try-on `body` asks for, or replay the one `idempotency_key`
        already made with the same request.

        `raw` is the request as received (with `photo`, it tells a replay from a reuse of the
        key for another request); `photo` is a person photo sent inline, which `body` names as
        `fileKey` `photo_key`. `lane`: which lane takes the upstream budget for it
        (docs/lanes.md); `batch`: the batch it belongs to, whose reservation counts it.
        """
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            idempotency_key = idempotency_scope(principal, idempotency_key, batch)
        if principal.is_browser:
            body = browser_tryon(principal, body)
            if photo is not None:
                await self._quotas.take(upload_limits(self._quotas, principal, time.time()))
        if body.callback_url is not None:
            await check_callback_url(body.callback_url, self._url_policy)
        if photo is not None:
            sniff(photo)  # refuse a bad photo before anything is written
        uploaded = {photo_key: _PENDING_UPLOAD} if photo_key else {}
        browser = principal.is_browser
        record, expected = await self._build(
            principal.app, body, uploaded, idempotency_key, browser=browser
        )
        seconds = send_deadline(principal, body.deadline_seconds, self._deadline)
        if seconds is not None:
            record.send_by = record.created_at + seconds
        digest = hashlib.sha256(raw)
        if photo is not None:
            digest.update(hashlib.sha256(photo).digest())
        request_fingerprint = fingerprint(digest.digest())
        record.lane = lane
        if batch is not None:
            record.batch_id = batch.batch_id
            record.tryon_webhooks = batch.webhooks
        # Counted before anything is written: a full quota refuses with nothing stored. An
        # app without limits (every env-configured one) costs nothing here.
        # A batch counted all its try-ons before accepting the first: its try-ons hold a unit
        # each of its reservation, and only their ending gives it back.
        counted = batch is not None
        try:
            p = principal
            limits = self._quotas.tryon_limits(p.app, p.policy, p.payer, time.time())
            counters = batch.counters if batch is not None else await self._quotas.take(limits)
        except LimitReached:
            # A full quota must not refuse the replay of a try-on it already counted.
            if idempotency_key is None or not await self._store.remembers(
                principal.app, idempotency_key
            ):
                raise
            counters = []
        record.quota_counters = counters
        # Whose allowance it used: an operator's retry counts it against the same ones.
        record.payer = principal.payer
        try:
            stored, created = await self._record(
                body,
                browser=browser,
                photo=photo,
                record=record,
                expected=expected,
                uploaded=uploaded,
                idempotency_key=idempotency_key,
                request_fingerprint=request_fingerprint,
                reuse=self._reuse.enabled and reuse_allowed(principal, body),
                defer=batch.defer if batch is not None else 0.0,
            )
        except BaseException:
            if counters and not counted:
                await self._quotas.give_back(record.id, counters)
            raise
        if not created and counters and not counted:  # a replay spends nothing new
            await self._quotas.give_back(record.id, counters)
        if created and stored.reuse_key is not None:
            stored = await self._complete_if_stored(stored)
        return Accepted(stored, replayed=not created)

    async def _complete_if_stored(self, record: TryOnRecord) -> TryOnRecord:
        """Complete the try-on at once from an identical one's stored result: no credit, no
        upstream call; the state change publishes its event, queues its webhooks and gives its
        quota reservation back (a reused result spends none). Its job finds it done."""
        hit = await self._reuse.lookup(record)
        if hit is None:
            return record
        return await self._store.update(record.id, completed_from(hit))

    async def check(self, principal: Principal, body: TryOnCreate) -> None:
        """Everything that could refuse `body` for a secret-key caller, writing nothing: a
        batch checks all its try-ons before it counts or accepts the first."""
        if body.callback_url is not None:
            await self.check_callback(body.callback_url)
        await self._build(principal.app, body, {}, None, browser=False)

    async def check_callback(self, url: str) -> None:
        await check_callback_url(url, self._url_policy)

    async def _build(
        self,
        app: str,
        body: TryOnCreate,
        uploaded: Mapping[str, str],
        idempotency_key: str | None,
        *,
        browser: bool,
        fresh: bool = False,
    ) -> tuple[TryOnRecord, Expected]:
        return await build_record(
            app,
            body,
            redis=self._pipeline,
            keys=self._keys,
            uploaded=uploaded,
            cache=self._lookups,
            fresh=fresh,
            browser=browser,
            idempotency_key=idempotency_key,
            deadline=self._deadline,
        )

    async def _write(
        self,
        record: TryOnRecord,
        idempotency_key: str | None,
        request_fingerprint: str,
        expected: Expected | None = None,
        *,
        defer: float,
    ) -> tuple[TryOnRecord, bool]:
        return await self._store.accept(
            record,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            idempotency_ttl=self._idempotency_ttl,
            retention=self._retention,
            expected=expected,
            defer=defer,
        )

    async def _key_for_reuse(self, record: TryOnRecord, inline: StoredImage | None) -> None:
        """Set the record's result cache key from its final product and photo (`inline`: the
        photo sent with the request, else the stored photo it names)."""
        image = inline
        if image is None and record.person.image_id is not None:
            image = await self._photos.get(record.app, record.person.image_id)
        # A photo by URL has no content hash to key on: such a try-on is never reused.
        if image is not None:
            record.reuse_key = reuse_key(record, image)

    async def _record(
        self,
        body: TryOnCreate,
        *,
        browser: bool,
        photo: bytes | None,
        record: TryOnRecord,
        expected: Expected,
        uploaded: Mapping[str, str],
        idempotency_key: str | None,
        request_fingerprint: str,
        reuse: bool,
        defer: float,
    ) -> tuple[TryOnRecord, bool]:
        """Store the photo sent inline, then record and enqueue the try-on in one script;
        (the stored record, whether it is new)."""
        person = None
        image: StoredImage | None = None
        if photo is not None:
            image = await self._photos.save(
                record.app,
                photo,
                external_user_id=body.external_user_id,
                keep_for_days=body.output.keep_for_days if body.output else None,
            )
            person = record.person = PersonDef(image_id=image.id)
        if reuse:
            await self._key_for_reuse(record, image)
        try:
            try:
                return await self._write(
                    record, idempotency_key, request_fingerprint, expected, defer=defer
                )
            except StaleLookup:
                # The remembered product or photo changed: build again from what Redis holds.
                self._lookups.forget(expected)
                fresh, _ = await self._build(
                    record.app, body, uploaded, idempotency_key, browser=browser, fresh=True
                )
                fresh.person = person or fresh.person
                fresh.quota_counters = record.quota_counters
                fresh.payer = record.payer
                fresh.send_by = record.send_by
                if reuse:
                    await self._key_for_reuse(fresh, image)
                fresh.lane = record.lane
                fresh.batch_id = record.batch_id
                fresh.tryon_webhooks = record.tryon_webhooks
                fresh.id = record.id  # the reservation is named after it
                return await self._write(fresh, idempotency_key, request_fingerprint, defer=defer)
        except IdempotencyConflict as exc:
            raise Conflict(
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used with a different request body.",
            ) from exc
        except TryOnNotFound as exc:
            raise Conflict("IDEMPOTENCY_KEY_EXPIRED", "The original try-on expired.") from exc
