"""A batch of try-ons as the API takes and shows it, and as it is stored (docs/lanes.md)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec

from service.tryons.models import (
    DeadlineSeconds,
    Metadata,
    OutputIn,
    PersonIn,
    ProductIn,
    TryOnStatus,
)

MAX_TRYONS = 1000
BatchStatus = Literal["accepting", "running", "completed"]


class _Wire(
    msgspec.Struct, frozen=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True
):
    """Request models refuse unknown fields, as the try-on's do."""


class BatchItemIn(_Wire, frozen=True):
    person: PersonIn
    product: ProductIn


class BatchCreate(_Wire, frozen=True):
    """Body of `POST /v1/batches`: one photo times many products (`person` + `products`), or a
    list of `items` ({person, product}); up to 1,000 try-ons. `externalUserId`, `output`,
    `metadata` and `deadlineSeconds` apply to every try-on; `callbackUrl` receives the
    `batch.completed` event (and each try-on's own events when `tryonWebhooks` is true)."""

    person: PersonIn | None = None
    products: Annotated[list[ProductIn], msgspec.Meta(max_length=MAX_TRYONS)] | None = None
    items: Annotated[list[BatchItemIn], msgspec.Meta(max_length=MAX_TRYONS)] | None = None
    external_user_id: str | None = None
    output: OutputIn | None = None
    metadata: Metadata | None = None
    callback_url: str | None = None
    tryon_webhooks: bool = False
    deadline_seconds: DeadlineSeconds | None = None


class BatchRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a batch keeps besides its counters (the `doc` field of its hash)."""

    id: str
    app: str
    total: int
    created_at: float = msgspec.field(default_factory=time.time)
    metadata: Metadata | None = None
    callback_url: str | None = None
    tryon_webhooks: bool = False
    # The batch's quota reservation: `total` units of each counter, one per try-on.
    quota_counters: list[str] = msgspec.field(default_factory=list)


class BatchHead(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The part of `batch.completed`'s data known at creation (the rest is added when the
    last try-on finishes, in the same script: service/tryons/store.py)."""

    id: str
    total: int
    created_at: str
    metadata: Metadata | None = None


class BatchCounts(msgspec.Struct, frozen=True):
    pending: int
    completed: int
    failed: int
    canceled: int


class BatchTryOn(msgspec.Struct, frozen=True):
    id: str
    status: TryOnStatus


class BatchOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """What `GET /v1/batches/{id}` shows: progress, and one page of its try-ons in item order
    (`nextOffset`: the next page's `offset`, absent on the last)."""

    id: str
    status: BatchStatus
    total: int
    counts: BatchCounts
    created_at: str
    tryons: list[BatchTryOn]
    canceled: bool = False
    completed_at: str | None = None
    metadata: Metadata | None = None
    next_offset: int | None = None
