"""The gateway's wire shapes, as msgspec Structs.

They mirror the gateway's own models (service/tryons/models.py, service/webhooks/models.py, ...)
without importing them: a backend installs this package, not the server. A test compares each
of them with the gateway's OpenAPI document (`SCHEMA_NAMES` says which schema each mirrors), so
the two cannot drift apart unnoticed.

Answers are decoded leniently (a field the gateway adds later is ignored); request bodies are
encoded with camelCase names and without the fields left unset.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

TryOnStatus = Literal["queued", "submitting", "running", "completed", "failed", "canceled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "canceled"})
EventType = Literal[
    "tryon.completed",
    "tryon.failed",
    "tryon.canceled",
    "tryon.processing",
    "batch.completed",
    "account.balance_low",
    "app.daily_cap_near",
]
UsageGroupBy = Literal["day", "user", "product"]
KeepForDays = Literal[1, 3, 7]
Metadata = dict[str, str | int | float | bool | None]


class _Out(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An answer of the gateway."""


class _In(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A request body: fields left at their default are not sent."""


# --- errors ----------------------------------------------------------------------------------


class FieldError(_Out, frozen=True):
    """One bad field of a 400 `VALIDATION_FAILED`; `path` is dotted: `products.0.externalId`."""

    path: str
    message: str


class ErrorBody(_Out, frozen=True):
    """The one error envelope of every 4xx and 5xx."""

    code: str
    message: str
    status: int
    details: list[FieldError] | None = None


# --- photos ----------------------------------------------------------------------------------


class Image(_Out, frozen=True):
    """A stored person photo (`POST /v1/images`); its `id` starts any number of try-ons."""

    id: str
    content_type: str
    size: int
    crop: bool
    keep_for_days: int
    external_user_id: str | None = None


# --- try-ons ---------------------------------------------------------------------------------


class ImageSource(_In, frozen=True):
    """Exactly one of a gateway image `id` or a public `url`."""

    id: str | None = None
    url: str | None = None
    file_key: str | None = None


class ProductImage(_In, frozen=True):
    source: ImageSource
    classifications: dict[str, Any] | None = None


class ProductRef(_In, frozen=True):
    """A product of a try-on: a catalog `external_id`, or an inline definition."""

    external_id: str | None = None
    title: str | None = None
    description: str | None = None
    images: list[ProductImage] | None = None


class PersonImage(_In, frozen=True):
    source: ImageSource


class Person(_In, frozen=True):
    image: PersonImage


class Output(_In, frozen=True):
    watermark: bool | None = None
    keep_for_days: KeepForDays | None = None
    ai_label: bool | None = None


class TryOnCreate(_In, frozen=True):
    """Body of `POST /v1/try-ons`."""

    products: list[ProductRef]
    person: Person
    external_user_id: str | None = None
    output: Output | None = None
    metadata: Metadata | None = None
    callback_url: str | None = None
    # At least 1: a try-on not sent upstream within it ends DEADLINE_EXCEEDED, spending nothing.
    deadline_seconds: Annotated[float, msgspec.Meta(ge=1)] | None = None
    # False: generate afresh even when an identical try-on's result is stored.
    reuse: bool | None = None


class Result(_Out, frozen=True):
    image_url: str


class ErrorInfo(_Out, frozen=True):
    """Why a try-on failed."""

    code: str
    message: str


class TryOn(_Out, frozen=True):
    """A try-on as `GET /v1/try-ons/{id}`, its events and its webhooks show it."""

    id: str
    status: TryOnStatus
    created_at: str
    updated_at: str
    product_external_id: str | None = None
    external_user_id: str | None = None
    result: Result | None = None
    error: ErrorInfo | None = None
    metadata: Metadata | None = None
    completed_at: str | None = None
    # The try-on whose stored result this one reused (no credit spent).
    reused_from: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


# --- batches ---------------------------------------------------------------------------------


class BatchItem(_In, frozen=True):
    person: Person
    product: ProductRef


class BatchCreate(_In, frozen=True):
    """Body of `POST /v1/batches`: `person` and `products` (one photo, many products), or
    `items`; up to 1,000 try-ons, run in the batch lane."""

    person: Person | None = None
    products: list[ProductRef] | None = None
    items: list[BatchItem] | None = None
    external_user_id: str | None = None
    output: Output | None = None
    metadata: Metadata | None = None
    # Receives `batch.completed`; each try-on's own events too when `tryon_webhooks`.
    callback_url: str | None = None
    tryon_webhooks: bool = False
    deadline_seconds: Annotated[float, msgspec.Meta(ge=1)] | None = None


class BatchCounts(_Out, frozen=True):
    pending: int
    completed: int
    failed: int
    canceled: int


class BatchTryOn(_Out, frozen=True):
    id: str
    status: TryOnStatus


class Batch(_Out, frozen=True):
    """A batch's progress and one page of its try-ons (`next_offset`: the next page)."""

    id: str
    status: Literal["accepting", "running", "completed"]
    total: int
    counts: BatchCounts
    created_at: str
    tryons: list[BatchTryOn]
    canceled: bool = False
    completed_at: str | None = None
    metadata: Metadata | None = None
    next_offset: int | None = None


# --- products --------------------------------------------------------------------------------


class ProductPut(_In, frozen=True):
    """Body of `PUT /v1/products/{externalId}`."""

    images: list[ProductImage]
    title: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class ProductImageInfo(_Out, frozen=True):
    source_url: str
    order: int
    classifications: dict[str, Any] | None = None


class Product(_Out, frozen=True):
    external_id: str
    images: list[ProductImageInfo]
    created_at: float
    updated_at: float
    title: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class ProductPage(_Out, frozen=True):
    items: list[Product]
    next_cursor: str | None
    has_more: bool
    count: int


# --- sessions --------------------------------------------------------------------------------


class SessionCreate(_In, frozen=True):
    """Body of `POST /v1/sessions`."""

    external_user_id: str
    expires_in_minutes: int = 15
    max_try_ons: int = 5
    products: list[str] | None = None


class Session(_Out, frozen=True):
    """An end-user token for one shopper's browser, with the limits it carries."""

    token: str
    external_user_id: str
    expires_at: str
    max_try_ons: int
    products: list[str] | None = None


# --- webhooks --------------------------------------------------------------------------------


class EndpointCreate(_In, frozen=True):
    """Body of `POST /v1/webhook-endpoints`; no `event_types`: every default event."""

    url: str
    description: str | None = None
    event_types: list[EventType] = msgspec.field(default_factory=list)
    enabled: bool = True
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class EndpointUpdate(_In, frozen=True):
    """Body of `PATCH /v1/webhook-endpoints/{id}`: UNSET fields stay as they are; a None
    `description` clears it."""

    url: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    event_types: list[EventType] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    headers: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class WebhookEndpoint(_Out, frozen=True):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    headers: dict[str, str]
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookEndpointCreated(WebhookEndpoint, frozen=True):
    """The answer to a registration: the only time the first signing secret is shown."""

    secret: str


class EndpointPage(_Out, frozen=True):
    items: list[WebhookEndpoint]
    next_cursor: str | None


class SecretRotate(_In, frozen=True):
    """Body of the two secret rotations: how long the previous secret keeps signing."""

    overlap_seconds: int = 86_400


class SecretRotated(_Out, frozen=True):
    """A new endpoint secret, shown once, and until when the previous one still signs."""

    id: str
    secret: str
    previous_secret_expires_at: str | None


class CallbackSecret(_Out, frozen=True):
    """The secret that signs deliveries to per-request `callback_url`s."""

    secret: str
    created_at: float
    previous_expires_at: float | None = None


class Attempt(_Out, frozen=True):
    at: float
    duration_ms: float
    status: int | None = None
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None
    next_attempt_at: float | None = None


class Delivery(_Out, frozen=True):
    """One event to one target, with every attempt so far."""

    id: str
    event_id: str
    event_type: str
    target: str
    status: str
    attempts: list[Attempt]
    created_at: float
    tryon_id: str | None = None
    next_attempt_at: float | None = None
    last_error: str | None = None


class Recover(_In, frozen=True):
    since: float


class Recovered(_Out, frozen=True):
    """Delivery ids sent again by a recover."""

    resent: list[str]


class Schedule(_Out, frozen=True):
    retry_delays_seconds: list[float]
    max_attempts: int


# --- account ---------------------------------------------------------------------------------


class Credits(_Out, frozen=True):
    credit_balance: int
    as_of: float


# --- usage -----------------------------------------------------------------------------------


class UsageFigures(_Out, frozen=True):
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    # Completed generations, and creates whose outcome is unknown (counted as spent).
    credits: int = 0


class UsageRow(_Out, frozen=True):
    """One group's figures; only its grouping's field is set (`user_id` None in a user
    grouping: try-ons without an externalUserId)."""

    accepted: int
    completed: int
    failed: int
    canceled: int
    credits: int
    day: str | None = None
    account: str | None = None
    app: str | None = None
    user_id: str | None = None
    product_id: str | None = None


class UsageReport(_Out, frozen=True):
    """`GET /v1/usage`: the app's figures over UTC days `from_`..`to`."""

    from_: str = msgspec.field(name="from")
    to: str
    group_by: str
    rows: list[UsageRow]
    total: UsageFigures


# The gateway's OpenAPI schema each model mirrors (checked by the client's contract test).
SCHEMA_NAMES: dict[type[msgspec.Struct], str] = {
    FieldError: "FieldError",
    ErrorBody: "ErrorBody",
    Image: "ImageOut",
    ImageSource: "ImageSourceIn",
    ProductImage: "ProductImageIn",
    ProductRef: "ProductIn",
    PersonImage: "PersonImageIn",
    Person: "PersonIn",
    Output: "OutputIn",
    TryOnCreate: "TryOnCreate",
    Result: "ResultOut",
    ErrorInfo: "ErrorInfo",
    TryOn: "TryOnOut",
    BatchItem: "BatchItemIn",
    BatchCreate: "BatchCreate",
    BatchCounts: "BatchCounts",
    BatchTryOn: "BatchTryOn",
    Batch: "BatchOut",
    ProductPut: "ProductPut",
    ProductImageInfo: "ProductImageOut",
    Product: "ProductOut",
    ProductPage: "ProductPage",
    SessionCreate: "SessionCreate",
    Session: "SessionOut",
    EndpointCreate: "EndpointCreate",
    EndpointUpdate: "EndpointUpdate",
    WebhookEndpoint: "EndpointOut",
    WebhookEndpointCreated: "EndpointCreatedOut",
    EndpointPage: "EndpointPage",
    SecretRotate: "SecretRotate",
    SecretRotated: "SecretRotatedOut",
    CallbackSecret: "CallbackSecretOut",
    Attempt: "Attempt",
    Delivery: "DeliveryOut",
    Recover: "Recover",
    Recovered: "Recovered",
    Schedule: "Schedule",
    Credits: "CreditsOut",
    UsageFigures: "UsageFigures",
    UsageRow: "UsageRow",
    UsageReport: "UsageReport",
}
