"""Each operation of the `/v1` API as a `Call`: what to send and what the answer decodes to.

Both clients run these same descriptions (one over a blocking httpx.Client, one over an
httpx.AsyncClient), so a route, a body or a retry rule is written once, here.
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from tryon_client.models import (
    Batch,
    BatchCreate,
    CallbackSecret,
    Credits,
    Delivery,
    EndpointCreate,
    EndpointPage,
    EndpointUpdate,
    EventType,
    Image,
    ImageSource,
    KeepForDays,
    Metadata,
    Output,
    Person,
    PersonImage,
    Product,
    ProductImage,
    ProductPage,
    ProductPut,
    ProductRef,
    Recover,
    Recovered,
    Schedule,
    SecretRotate,
    SecretRotated,
    Session,
    SessionCreate,
    TryOn,
    TryOnCreate,
    UsageGroupBy,
    UsageReport,
    WebhookEndpoint,
    WebhookEndpointCreated,
)

T = TypeVar("T")

# One long-poll holds at most this long (the gateway's GATEWAY_MAX_WAIT_SECONDS defaults to 60);
# `wait()` chains them up to its own timeout.
LONG_POLL_SECONDS = 25.0
# What a read may take beyond the long-poll itself before the call counts as timed out.
LONG_POLL_SLACK = 10.0
# The gateway sends a keep-alive comment after 15 s without a change: a stream silent for
# longer than this is broken, and is opened again.
STREAM_READ_TIMEOUT = 40.0

PhotoInput = bytes | IO[bytes] | os.PathLike[str] | str
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    answer: type[T]
    params: dict[str, str | int | float] | None = None
    json: msgspec.Struct | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # True when sending it twice does nothing twice (see retry.py).
    repeatable: bool = False
    # A read timeout for this call when it may legitimately take longer than the client's.
    read_timeout: float | None = None

    def content(self) -> bytes | None:
        return None if self.json is None else _encoder.encode(self.json)

    def request_headers(self) -> dict[str, str]:
        if self.json is None:
            return self.headers
        return {"Content-Type": "application/json", **self.headers}


def _seg(value: str) -> str:
    """A path segment: an id containing `/` or `?` stays one segment."""
    return quote(value, safe="")


def _read_photo(photo: PhotoInput, filename: str | None) -> tuple[str, bytes]:
    # Read whole (photos are at most 10 MB) so every retry sends the same bytes.
    if isinstance(photo, bytes):
        return filename or "photo", photo
    if isinstance(photo, str | os.PathLike):
        path = Path(photo)
        return filename or path.name, path.read_bytes()
    return filename or Path(getattr(photo, "name", "photo")).name, photo.read()


# --- photos ----------------------------------------------------------------------------------


def upload_photo(
    photo: PhotoInput,
    *,
    filename: str | None,
    crop: bool | None,
    keep_for_days: KeepForDays | None,
    external_user_id: str | None,
) -> Call[Image]:
    name, content = _read_photo(photo, filename)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    form: dict[str, str] = {}
    if crop is not None:
        form["crop"] = "true" if crop else "false"
    if keep_for_days is not None:
        form["keepForDays"] = str(keep_for_days)
    if external_user_id is not None:
        form["externalUserId"] = external_user_id
    # The gateway deduplicates photos by content: sending one twice stores it once.
    return Call(
        "POST",
        "/v1/images",
        Image,
        files={"file": (name, content, content_type)},
        data=form,
        repeatable=True,
    )


# --- try-ons ---------------------------------------------------------------------------------


def create_tryon(
    product: str | ProductRef,
    *,
    image_id: str | None,
    image_url: str | None,
    external_user_id: str | None,
    output: Output | None,
    metadata: Metadata | None,
    callback_url: str | None,
    idempotency_key: str | None,
) -> Call[TryOn]:
    if (image_id is None) == (image_url is None):
        raise ValueError("pass exactly one of image_id and image_url")
    body = TryOnCreate(
        products=[ProductRef(external_id=product) if isinstance(product, str) else product],
        person=Person(image=PersonImage(source=ImageSource(id=image_id, url=image_url))),
        external_user_id=external_user_id,
        output=output,
        metadata=metadata,
        callback_url=callback_url,
    )
    # One key per logical create, reused by every retry of this Call: the gateway answers a
    # repeat with the try-on the first attempt made, so a retry never makes a second one.
    key = idempotency_key or str(uuid.uuid4())
    return Call(
        "POST",
        "/v1/try-ons",
        TryOn,
        json=body,
        headers={"Idempotency-Key": key},
        repeatable=True,
    )


def get_tryon(tryon_id: str, *, wait: float | None = None) -> Call[TryOn]:
    if not wait or wait <= 0:
        return Call("GET", f"/v1/try-ons/{_seg(tryon_id)}", TryOn, repeatable=True)
    return Call(
        "GET",
        f"/v1/try-ons/{_seg(tryon_id)}",
        TryOn,
        params={"wait": round(wait, 3)},
        repeatable=True,
        read_timeout=wait + LONG_POLL_SLACK,
    )


def tryon_events_path(tryon_id: str) -> str:
    return f"/v1/try-ons/{_seg(tryon_id)}/events"


def cancel_tryon(tryon_id: str) -> Call[TryOn]:
    # Canceling twice answers 409 the second time at worst, never a double effect.
    return Call("DELETE", f"/v1/try-ons/{_seg(tryon_id)}", TryOn, repeatable=True)


def tryon_deliveries(tryon_id: str) -> Call[list[Delivery]]:
    path = f"/v1/try-ons/{_seg(tryon_id)}/deliveries"
    return Call("GET", path, list[Delivery], repeatable=True)


# --- batches ---------------------------------------------------------------------------------


def create_batch(body: BatchCreate, *, idempotency_key: str | None) -> Call[Batch]:
    # As for a try-on: one key per logical create, so a retry replays the batch (and finishes
    # accepting it, if the first attempt was cut short) instead of making a second one.
    key = idempotency_key or str(uuid.uuid4())
    return Call(
        "POST", "/v1/batches", Batch, json=body, headers={"Idempotency-Key": key}, repeatable=True
    )


def get_batch(batch_id: str, *, offset: int, limit: int) -> Call[Batch]:
    params: dict[str, str | int | float] = {"offset": offset, "limit": limit}
    return Call("GET", f"/v1/batches/{_seg(batch_id)}", Batch, params=params, repeatable=True)


def cancel_batch(batch_id: str) -> Call[Batch]:
    # Canceling again cancels nothing more.
    return Call("DELETE", f"/v1/batches/{_seg(batch_id)}", Batch, repeatable=True)


# --- products --------------------------------------------------------------------------------


def put_product(
    external_id: str,
    images: Sequence[str | ProductImage],
    *,
    title: str | None,
    description: str | None,
    metadata: dict[str, Any] | None,
) -> Call[Product]:
    body = ProductPut(
        images=[
            ProductImage(source=ImageSource(url=i)) if isinstance(i, str) else i for i in images
        ],
        title=title,
        description=description,
        metadata=metadata,
    )
    path = f"/v1/products/{_seg(external_id)}"
    return Call("PUT", path, Product, json=body, repeatable=True)


def get_product(external_id: str) -> Call[Product]:
    return Call("GET", f"/v1/products/{_seg(external_id)}", Product, repeatable=True)


def delete_product(external_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/products/{_seg(external_id)}", type(None), repeatable=True)


def list_products(*, limit: int, cursor: str | None) -> Call[ProductPage]:
    params: dict[str, str | int | float] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/products", ProductPage, params=params, repeatable=True)


# --- sessions --------------------------------------------------------------------------------


def create_session(
    external_user_id: str,
    *,
    expires_in_minutes: int,
    max_try_ons: int,
    products: Sequence[str] | None,
) -> Call[Session]:
    body = SessionCreate(
        external_user_id=external_user_id,
        expires_in_minutes=expires_in_minutes,
        max_try_ons=max_try_ons,
        products=list(products) if products is not None else None,
    )
    # A second token for the same user is harmless, and the first one is lost with the answer.
    return Call("POST", "/v1/sessions", Session, json=body, repeatable=True)


# --- webhook endpoints -----------------------------------------------------------------------

_ENDPOINTS = "/v1/webhook-endpoints"


def _endpoint(endpoint_id: str) -> str:
    return f"{_ENDPOINTS}/{_seg(endpoint_id)}"


def create_webhook_endpoint(
    url: str,
    *,
    event_types: Sequence[EventType],
    description: str | None,
    enabled: bool,
    headers: dict[str, str] | None,
) -> Call[WebhookEndpointCreated]:
    body = EndpointCreate(
        url=url,
        event_types=list(event_types),
        description=description,
        enabled=enabled,
        headers=headers or {},
    )
    # Not repeatable: a repeat would register a second endpoint (and a second secret).
    return Call("POST", _ENDPOINTS, WebhookEndpointCreated, json=body)


def list_webhook_endpoints(*, limit: int, cursor: str | None) -> Call[EndpointPage]:
    params: dict[str, str | int | float] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", _ENDPOINTS, EndpointPage, params=params, repeatable=True)


def get_webhook_endpoint(endpoint_id: str) -> Call[WebhookEndpoint]:
    return Call("GET", _endpoint(endpoint_id), WebhookEndpoint, repeatable=True)


def update_webhook_endpoint(endpoint_id: str, changes: EndpointUpdate) -> Call[WebhookEndpoint]:
    return Call("PATCH", _endpoint(endpoint_id), WebhookEndpoint, json=changes, repeatable=True)


def delete_webhook_endpoint(endpoint_id: str) -> Call[None]:
    return Call("DELETE", _endpoint(endpoint_id), type(None), repeatable=True)


def rotate_webhook_secret(endpoint_id: str, overlap_seconds: int | None) -> Call[SecretRotated]:
    body = None if overlap_seconds is None else SecretRotate(overlap_seconds=overlap_seconds)
    # Not repeatable: a repeat would replace the secret the first answer showed.
    return Call("POST", f"{_endpoint(endpoint_id)}/rotate-secret", SecretRotated, json=body)


def test_webhook_endpoint(endpoint_id: str) -> Call[Delivery]:
    return Call("POST", f"{_endpoint(endpoint_id)}/test", Delivery)


def webhook_attempts(endpoint_id: str, *, limit: int) -> Call[list[Delivery]]:
    path = f"{_endpoint(endpoint_id)}/attempts"
    return Call("GET", path, list[Delivery], params={"limit": limit}, repeatable=True)


def resend_delivery(endpoint_id: str, delivery_id: str) -> Call[Delivery]:
    path = f"{_endpoint(endpoint_id)}/deliveries/{_seg(delivery_id)}/resend"
    return Call("POST", path, Delivery)


def recover_webhook_endpoint(endpoint_id: str, since: float) -> Call[Recovered]:
    body = Recover(since=since)
    return Call("POST", f"{_endpoint(endpoint_id)}/recover", Recovered, json=body)


def webhook_schedule() -> Call[Schedule]:
    return Call("GET", f"{_ENDPOINTS}/schedule", Schedule, repeatable=True)


def get_callback_secret() -> Call[CallbackSecret]:
    return Call("GET", "/v1/callback-secret", CallbackSecret, repeatable=True)


def rotate_callback_secret(overlap_seconds: int | None) -> Call[CallbackSecret]:
    body = None if overlap_seconds is None else SecretRotate(overlap_seconds=overlap_seconds)
    return Call("POST", "/v1/callback-secret/rotate", CallbackSecret, json=body)


# --- account ---------------------------------------------------------------------------------


def get_credits() -> Call[Credits]:
    return Call("GET", "/v1/account/credits", Credits, repeatable=True)


def get_usage(
    from_day: str | None, to_day: str | None, group_by: UsageGroupBy
) -> Call[UsageReport]:
    params: dict[str, str | int | float] = {"groupBy": group_by}
    if from_day is not None:
        params["from"] = from_day
    if to_day is not None:
        params["to"] = to_day
    return Call("GET", "/v1/usage", UsageReport, params=params, repeatable=True)


def erase_customer(external_user_id: str) -> Call[None]:
    # Idempotent on the gateway: erasing twice erases once.
    path = f"/v1/customers/{_seg(external_user_id)}"
    return Call("DELETE", path, type(None), repeatable=True)
