"""The try-on as the gateway sees it: the accepted request, the persisted record, the public view.

One record per try-on, a msgspec Struct stored as JSON in Redis and carried end to end: the
API writes it, workers advance it, events and webhooks publish its public view.
"""

from __future__ import annotations

import functools
import time
from typing import Annotated, Any, Literal

import msgspec

from service.access.quotas import Payer
from service.genlook.models import KeepForDays
from service.lanes import INTERACTIVE, Lane

TryOnStatus = Literal["queued", "submitting", "running", "completed", "failed", "canceled"]
# The record's states: the public ones plus `storing` (Genlook finished; the result is being
# copied into the gateway's store), which clients see as `running`.
RecordStatus = Literal[
    "queued", "submitting", "running", "storing", "completed", "failed", "canceled"
]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "canceled"})


class _Wire(
    msgspec.Struct, frozen=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True
):
    """Public request models: unknown fields are a client bug and are refused."""


class ImageSourceIn(_Wire, frozen=True):
    id: str | None = None
    url: str | None = None
    file_key: str | None = None


class ProductImageIn(_Wire, frozen=True):
    source: ImageSourceIn
    classifications: dict[str, Any] | None = None


class ProductIn(_Wire, frozen=True):
    external_id: str | None = None
    title: str | None = None
    description: str | None = None
    images: list[ProductImageIn] | None = None


class PersonImageIn(_Wire, frozen=True):
    source: ImageSourceIn


class PersonIn(_Wire, frozen=True):
    image: PersonImageIn


class OutputIn(_Wire, frozen=True):
    watermark: bool | None = None
    keep_for_days: KeepForDays | None = None
    ai_label: bool | None = None


Metadata = dict[str, str | int | float | bool | None]

# A try-on's deadline, in seconds from its acceptance. Below a second no worker could take it
# up in time; above WORKER_TRYON_DEADLINE it means that bound (`send_deadline` in
# service/tryons/accept.py).
DeadlineSeconds = Annotated[float, msgspec.Meta(ge=1)]


class TryOnCreate(_Wire, frozen=True):
    """Body of `POST /v1/try-ons`: Genlook's current shape plus `metadata` and `callbackUrl`."""

    products: list[ProductIn]
    person: PersonIn
    external_user_id: str | None = None
    output: OutputIn | None = None
    metadata: Metadata | None = None
    callback_url: str | None = None
    # Past it, a try-on not yet sent upstream ends DEADLINE_EXCEEDED and spends nothing.
    deadline_seconds: DeadlineSeconds | None = None
    # False: generate afresh even when an identical try-on's result is stored (a merchant who
    # wants a new variation); the result is then not offered for reuse either.
    reuse: bool | None = None


# --- the persisted record ------------------------------------------------------------------


class ProductDef(msgspec.Struct, frozen=True, omit_defaults=True):
    """A product as the worker will send it: what the app calls it and its definition."""

    external_id: str | None = None
    title: str | None = None
    description: str | None = None
    image_urls: list[str] = msgspec.field(default_factory=list)
    classifications: list[dict[str, Any] | None] = msgspec.field(default_factory=list)

    @property
    def is_reference_only(self) -> bool:
        return not (self.title or self.description or self.image_urls)


class PersonDef(msgspec.Struct, frozen=True, omit_defaults=True):
    """Exactly one of a gateway image id or a public URL Genlook fetches itself."""

    image_id: str | None = None
    url: str | None = None


class ErrorInfo(msgspec.Struct, frozen=True):
    code: str
    message: str


class StoredResult(msgspec.Struct, frozen=True, kw_only=True):
    """A result image in the gateway's object store (service/results/), by reference: another
    try-on may carry the same reference to show the same object without copying its bytes."""

    key: str  # the object's path in the store (unguessable: it holds a random part)
    content_type: str
    size: int
    etag: str  # a strong validator: a digest of the bytes
    expires_at: float  # end of retention: the sweeper deletes the object after this


class TryOnRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    app: str
    status: RecordStatus = "queued"
    created_at: float = msgspec.field(default_factory=time.time)
    updated_at: float = msgspec.field(default_factory=time.time)
    product: ProductDef
    person: PersonDef
    external_user_id: str | None = None
    watermark: bool | None = None
    keep_for_days: int | None = None
    ai_label: bool | None = None
    metadata: Metadata | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    # The accepting request's trace: carried into job logs and webhook attempts.
    trace_id: str | None = None
    # The upstream account (service/accounts/) chosen for this try-on: its photo is uploaded
    # there and its create sent there, so its generation lives there. Changed only while
    # nothing was created (a failover); None: not chosen yet (or a record from before
    # accounts existed, whose generation lives in the default account).
    account: str | None = None
    # Upstream progress, each written as soon as it is known.
    upstream_image_id: str | None = None
    upstream_product_id: str | None = None
    create_started_at: float | None = None
    generation_id: str | None = None
    upstream_status: str | None = None
    # The result, once copied into the gateway's store. Genlook's own (temporary) URL is never
    # recorded: the copy reads it from the generation, again if it expired.
    stored_result: StoredResult | None = None
    # Failed tries at that copy (bounded by RESULTS_COPY_ATTEMPTS).
    copy_attempts: int = 0
    error: ErrorInfo | None = None
    started_at: float | None = None
    completed_at: float | None = None
    # The worker's bound (WORKER_TRYON_DEADLINE from acceptance): a try-on still not terminal
    # then fails DEADLINE_EXCEEDED, sent upstream or not, so nothing waits forever.
    deadline_at: float = 0.0
    # The caller's deadline (`deadlineSeconds`, or the app's default for browsers): the create
    # is not sent after it. Once sent, the try-on follows through (the credit is spent) up to
    # `deadline_at`. None: `deadline_at` alone.
    send_by: float | None = None
    # Times the photo was uploaded again because Genlook no longer had it (bounded to one).
    photo_reuploads: int = 0
    # Quota counters this try-on holds a unit of (service/access/quotas.py); given back if it
    # ends without spending a credit.
    quota_counters: list[str] = msgspec.field(default_factory=list)
    # Whose token or anonymous allowance they include, so a retry counts against it again.
    payer: Payer | None = None
    # The exact result cache's key (service/results/reuse.py); None: this try-on neither
    # reuses a stored result nor offers its own (cache off, `reuse: false`, a photo by URL).
    reuse_key: str | None = None
    # The try-on whose stored result this one completed with, spending no credit.
    reused_from: str | None = None
    # Which lane takes the upstream budget for it (docs/lanes.md); a batch's try-ons: `batch`.
    lane: Lane = INTERACTIVE
    # The batch it belongs to, and whether its own events go to webhooks (the batch's
    # `batch.completed` always does; SSE and long-polls see every change either way).
    batch_id: str | None = None
    tryon_webhooks: bool = True

    @property
    def unsent(self) -> bool:
        """No create call has been sent upstream (nor may have been)."""
        return self.create_started_at is None and self.generation_id is None

    @property
    def cancelable(self) -> bool:
        """Not sent upstream, so a cancel spends nothing: queued, or taken up by a worker that
        has not sent the create (it may be waiting for a budget cell); the worker checks for a
        cancel when it marks the create as sent (workers/runner.py)."""
        return self.status in ("queued", "submitting") and self.unsent

    @property
    def send_deadline(self) -> float:
        """The last moment a create may be sent for this try-on."""
        return self.deadline_at if self.send_by is None else min(self.send_by, self.deadline_at)

    @property
    def spent_nothing(self) -> bool:
        """Ended without a credit spent: never created upstream (a cancel, a refused create),
        completed from another try-on's stored result, or a generation that FAILED (Genlook
        gives its credit back)."""
        if self.status == "canceled" or self.reused_from is not None:
            return True
        if self.status != "failed":
            return False
        return self.unsent or self.upstream_status == "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def spends_credit(before: str, after: TryOnRecord) -> bool:
    """Whether the change from status `before` to `after` is the one where the try-on's credit
    counts as spent: the one rule the metrics and the usage figures both count by. Genlook
    completed the generation (`storing`; an operator's retry of a failed copy spends nothing
    more), or the try-on ended failed with a create sent and no refund known (an unknown
    outcome, a deadline passed while Genlook worked): Genlook may have charged it, so it is
    counted as spent, as its quota unit stays taken."""
    if before in TERMINAL or before == after.status:
        return False
    if after.status == "storing":
        return True
    # From `storing`, the credit was counted when the generation completed.
    return after.status == "failed" and before != "storing" and not after.spent_nothing


# --- the public view -------------------------------------------------------------------------


class ResultOut(msgspec.Struct, frozen=True, rename="camel"):
    image_url: str


class TryOnOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """What `GET /v1/try-ons/{id}`, SSE events and webhooks show of a try-on."""

    id: str
    status: TryOnStatus
    created_at: str
    updated_at: str
    product_external_id: str | None = None
    external_user_id: str | None = None
    result: ResultOut | None = None
    error: ErrorInfo | None = None
    metadata: Metadata | None = None
    completed_at: str | None = None
    # The try-on whose stored result this one reused (no credit spent, no upstream call).
    reused_from: str | None = None


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso(ts: float) -> str:
    # A record's timestamps are formatted on every read of it; strftime dominated a GET's own
    # cost, and the whole-second part repeats, so it is cached. Rounded to the millisecond, not
    # cut: a time stored rounded (a catalog's) and the same time unrounded read the same.
    seconds, millis = divmod(round(ts * 1000), 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


def public_view(record: TryOnRecord, result_url: str | None = None) -> TryOnOut:
    """`result_url`: the gateway's link to the stored result (service/results/links.py)."""
    return TryOnOut(
        id=record.id,
        status="running" if record.status == "storing" else record.status,
        created_at=iso(record.created_at),
        updated_at=iso(record.updated_at),
        product_external_id=record.product.external_id,
        external_user_id=record.external_user_id,
        result=ResultOut(image_url=result_url) if result_url else None,
        error=record.error,
        metadata=record.metadata,
        completed_at=iso(record.completed_at) if record.completed_at else None,
        reused_from=record.reused_from,
    )
