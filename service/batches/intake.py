"""Accepting a batch: every try-on checked first, all counted against the app's limits at once,
then each accepted through `TryOnIntake.accept` in the batch lane (docs/lanes.md).

Promise 5 (bad input changes nothing) holds for the batch as a whole: a try-on that would be
refused refuses the batch before anything is counted or written. An Idempotency-Key makes the
batch's accept resumable: the same request again replays the batch, and accepts whatever try-ons
a crash left unaccepted (each try-on has its own key within the batch, so none is made twice).
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
import os
import time

import msgspec

from service.access.quotas import Quotas
from service.auth import Principal
from service.batches.models import MAX_TRYONS, BatchCreate, BatchOut, BatchRecord
from service.batches.store import BatchStore
from service.domain_errors import Conflict, InvalidInput, NotFound
from service.lanes import BATCH
from service.tryons.accept import Accepted, BatchPart, TryOnIntake, check_idempotency_key
from service.tryons.models import TryOnCreate

# Try-ons checked or accepted at once: enough to fill a pipeline, not a thousand tasks.
_CONCURRENCY = 50
_encode = msgspec.json.encode
log = logging.getLogger(__name__)


def new_batch_id() -> str:
    return "ba_" + binascii.b2a_base64(os.urandom(15), newline=False).decode().translate(
        str.maketrans("+/", "-_")
    )


def expand(body: BatchCreate) -> list[TryOnCreate]:
    """The batch's try-ons, in item order; refuses a batch that is not exactly one shape."""
    if body.items is not None and body.person is None and body.products is None:
        pairs = [(item.person, item.product) for item in body.items]
    elif body.items is None and body.person is not None and body.products is not None:
        pairs = [(body.person, product) for product in body.products]
    else:
        raise InvalidInput(
            "VALIDATION_FAILED", "Send either `person` and `products`, or `items`, not both."
        )
    if not 0 < len(pairs) <= MAX_TRYONS:
        raise InvalidInput("VALIDATION_FAILED", f"A batch holds 1 to {MAX_TRYONS} try-ons.")
    return [
        TryOnCreate(
            products=[product],
            person=person,
            external_user_id=body.external_user_id,
            output=body.output,
            metadata=body.metadata,
            # A try-on's own callback only when the batch asked for per-try-on events.
            callback_url=body.callback_url if body.tryon_webhooks else None,
            deadline_seconds=body.deadline_seconds,
        )
        for person, product in pairs
    ]


class BatchIntake:
    def __init__(
        self,
        *,
        batches: BatchStore,
        tryons: TryOnIntake,
        quotas: Quotas,
        idempotency_ttl: float,
        spacing: float,
    ) -> None:
        self._batches = batches
        self._tryons = tryons
        self._quotas = quotas
        self._idempotency_ttl = idempotency_ttl
        # Seconds between the due times of a batch's jobs: one budget cell each, so they come
        # due at the pace the budget can send them instead of all at once (0: all at once).
        self._spacing = spacing

    async def accept(
        self, principal: Principal, body: BatchCreate, *, raw: bytes, idempotency_key: str | None
    ) -> tuple[BatchRecord, bool]:
        """Accept the batch (or replay the one the key made); (the batch, whether replayed)."""
        fingerprint = hashlib.sha256(raw).hexdigest()[:32]
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            found = await self._batches.remembered(principal.app, idempotency_key)
            if found is not None:
                return await self._replay(principal, body, found, fingerprint), True
        tryons = expand(body)
        if body.callback_url is not None:
            await self._tryons.check_callback(body.callback_url)
        for start in range(0, len(tryons), _CONCURRENCY):
            chunk = tryons[start : start + _CONCURRENCY]
            await asyncio.gather(*(self._tryons.check(principal, t) for t in chunk))
        batch = BatchRecord(
            id=new_batch_id(),
            app=principal.app,
            total=len(tryons),
            metadata=body.metadata,
            callback_url=body.callback_url,
            tryon_webhooks=body.tryon_webhooks,
        )
        if idempotency_key is not None:
            claimed = f"{batch.id} {fingerprint}"
            found = await self._batches.claim_key(
                principal.app, idempotency_key, claimed, self._idempotency_ttl
            )
            if found is not None:  # a concurrent request with the same key won
                return await self._replay(principal, body, found, fingerprint), True
        try:
            p = principal
            limits = self._quotas.tryon_limits(p.app, p.policy, p.payer, time.time())
            # All the batch's try-ons or none: a full cap refuses the batch, writing nothing.
            batch.quota_counters = await self._quotas.take(limits, units=batch.total)
            await self._batches.create(batch)
        except BaseException:
            if idempotency_key is not None:
                await self._batches.forget_key(principal.app, idempotency_key)
            raise
        await self._accept_tryons(principal, batch, tryons)
        return batch, False

    async def _replay(
        self, principal: Principal, body: BatchCreate, found: str, fingerprint: str
    ) -> BatchRecord:
        batch_id, known = found.split(" ", 1)
        if known != fingerprint:
            raise Conflict(
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used with a different request body.",
            )
        batch = await self._batches.get(batch_id)
        if batch is None:
            raise Conflict("IDEMPOTENCY_KEY_EXPIRED", "The original batch expired.")
        if await self._batches.status(batch_id) == "accepting":
            # The first request was cut short (a crash, a timeout): finish its accept. Try-ons
            # it accepted replay by their own keys; nothing is counted twice.
            await self._accept_tryons(principal, batch, expand(body))
        return batch

    async def _accept_tryons(
        self, principal: Principal, batch: BatchRecord, tryons: list[TryOnCreate]
    ) -> None:
        """Accept every try-on. One refused after the batch was checked (its photo or product
        deleted in between, a Redis timeout) does not stop the others: it counts as failed and
        its unit of the batch's reservation comes back. An interruption (a crash, a cancelled
        request) still lists those accepted, so a cancel reaches them; the batch stays
        `accepting` and a replay of its Idempotency-Key finishes the accept."""
        ids: list[str] = []
        refused: list[int] = []
        done = False
        try:
            for start in range(0, len(tryons), _CONCURRENCY):
                chunk = list(enumerate(tryons))[start : start + _CONCURRENCY]
                outcomes = await asyncio.gather(
                    *(self._accept_one(principal, batch, index, tryon) for index, tryon in chunk),
                    return_exceptions=True,
                )
                for (index, _), outcome in zip(chunk, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        log.warning("batch %s: item %d not accepted: %r", batch.id, index, outcome)
                        refused.append(index)
                    elif isinstance(outcome, BaseException):
                        raise outcome
                    else:
                        ids.append(outcome.record.id)
            done = True
        finally:
            await self._batches.accepted(batch, ids, done=done, not_accepted=len(refused))
        for index in refused:
            # Its own reservation id: given back once however often a replay gets here.
            await self._quotas.give_back(f"{batch.id}:{index}", batch.quota_counters)
        if await self._batches.is_canceled(batch.id):
            # Canceled while it was being accepted: the try-ons accepted after the cancel
            # are canceled too.
            await self._batches.cancel_tryons(batch.id)

    async def _accept_one(
        self, principal: Principal, batch: BatchRecord, index: int, tryon: TryOnCreate
    ) -> Accepted:
        return await self._tryons.accept(
            principal,
            tryon,
            raw=_encode(tryon),
            idempotency_key=str(index),
            lane=BATCH,
            batch=BatchPart(
                batch.id,
                batch.quota_counters,
                batch.tryon_webhooks,
                defer=index * self._spacing,
            ),
        )

    async def owned(self, principal: Principal, batch_id: str) -> BatchRecord:
        batch = await self._batches.get(batch_id)
        if batch is None or batch.app != principal.app:
            raise NotFound("BATCH_NOT_FOUND", "No such batch.")
        return batch

    async def view(self, batch: BatchRecord, offset: int = 0, limit: int = 100) -> BatchOut:
        return await self._batches.view(batch, offset, limit)

    async def cancel(self, batch: BatchRecord) -> BatchOut:
        """Cancel every try-on of the batch not yet sent upstream: they spend nothing. Those
        sent finish (their credits are spent) and count toward `batch.completed`."""
        await self._batches.mark_canceled(batch.id)
        await self._batches.cancel_tryons(batch.id)
        return await self._batches.view(batch)
