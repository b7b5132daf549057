"""The blocking client. `AsyncClient` (async_client.py) has the same methods, awaited."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from tryon_client import calls
from tryon_client._core import (
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    Settings,
    StreamReader,
    decode,
    stream_failure,
    stream_given_up,
    transport_error,
    wait_chunk,
)
from tryon_client.calls import Call, PhotoInput
from tryon_client.errors import ApiError, TryonError, WaitTimeout, api_error
from tryon_client.models import (
    Batch,
    BatchCreate,
    CallbackSecret,
    Credits,
    Delivery,
    EndpointPage,
    EndpointUpdate,
    EventType,
    Image,
    KeepForDays,
    Metadata,
    Output,
    Product,
    ProductImage,
    ProductPage,
    ProductRef,
    Recovered,
    Schedule,
    SecretRotated,
    Session,
    TryOn,
    UsageGroupBy,
    UsageReport,
    WebhookEndpoint,
    WebhookEndpointCreated,
)
from tryon_client.retry import RetryPolicy

T = TypeVar("T")


class Client:
    """tryon-gateway's `/v1` API with an app's secret key (a backend's credential: never give
    it to a browser). Every call has a timeout and is retried per `retry` (see retry.py).

        with Client("https://gateway.example", "sk_...") as client:
            image = client.upload_photo(Path("person.jpg"))
            tryon = client.wait(client.create_tryon("red-tee", image_id=image.id).id)
    """

    def __init__(
        self,
        base_url: str,
        secret_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = Settings(base_url, secret_key, timeout, retry or RetryPolicy())
        self._http = httpx.Client(transport=transport, **self._settings.client_options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        retries = 0
        while True:
            error: TryonError
            request = self._http.build_request(
                call.method, call.path, **self._settings.request_options(call)
            )
            try:
                return decode(call, self._http.send(request))
            except httpx.TransportError as exc:
                error, sent = transport_error(exc)
            except ApiError as exc:
                error, sent = exc, True
            delay = self._settings.retry.delay(
                retries, error, repeatable=call.repeatable, sent=sent
            )
            if delay is None:
                raise error
            time.sleep(delay)
            retries += 1

    # --- photos --------------------------------------------------------------------------------

    def upload_photo(
        self,
        photo: PhotoInput,
        *,
        filename: str | None = None,
        crop: bool | None = None,
        keep_for_days: KeepForDays | None = None,
        external_user_id: str | None = None,
    ) -> Image:
        """Store a person photo (bytes, a binary file or a path; JPEG, PNG, WebP or HEIC, at
        most 10 MB). `crop` (default true): a person-aware 4:5 crop upstream."""
        return self._run(
            calls.upload_photo(
                photo,
                filename=filename,
                crop=crop,
                keep_for_days=keep_for_days,
                external_user_id=external_user_id,
            )
        )

    # --- try-ons -------------------------------------------------------------------------------

    def create_tryon(
        self,
        product: str | ProductRef,
        *,
        image_id: str | None = None,
        image_url: str | None = None,
        external_user_id: str | None = None,
        output: Output | None = None,
        metadata: Metadata | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> TryOn:
        """Start a try-on of `product` (a catalog externalId, or an inline `ProductRef`) on a
        photo (`image_id` from upload_photo, or a public `image_url`); answers at once, queued.

        Sent with an `Idempotency-Key` (yours, or one generated for this call) that every
        retry reuses: however often the request is sent, one try-on is made."""
        return self._run(
            calls.create_tryon(
                product,
                image_id=image_id,
                image_url=image_url,
                external_user_id=external_user_id,
                output=output,
                metadata=metadata,
                callback_url=callback_url,
                idempotency_key=idempotency_key,
            )
        )

    def get_tryon(self, tryon_id: str, *, wait: float | None = None) -> TryOn:
        """The try-on; with `wait` (seconds, up to the gateway's limit, 60 by default) the
        gateway holds the answer until the try-on ends or the time is up."""
        return self._run(calls.get_tryon(tryon_id, wait=wait))

    def wait(self, tryon_id: str, *, timeout: float = DEFAULT_WAIT_TIMEOUT) -> TryOn:
        """The try-on once it is completed, failed or canceled (check `status`), by chained
        long-polls; WaitTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            tryon = self.get_tryon(tryon_id, wait=wait_chunk(deadline - time.monotonic()))
            if tryon.is_terminal:
                return tryon
            if time.monotonic() >= deadline:
                raise WaitTimeout(tryon)

    def events(self, tryon_id: str) -> Iterator[TryOn]:
        """Each new state of the try-on over Server-Sent Events, ending with the terminal one.
        A broken stream is reopened per the retry policy (states are not repeated)."""
        reader, retries = StreamReader(), 0
        while True:
            failure: Exception | None = None
            try:
                with self._http.stream(
                    "GET", calls.tryon_events_path(tryon_id), **self._settings.stream_options()
                ) as response:
                    if not response.is_success:
                        response.read()
                        raise api_error(response.status_code, response.content, response.headers)
                    reader.connected()
                    for line in response.iter_lines():
                        tryon = reader.feed(line)
                        if tryon is not None:
                            retries = 0
                            yield tryon
                    if reader.done:
                        return
            except (httpx.TransportError, ApiError) as exc:
                failure = exc
            error: TryonError = stream_failure(failure)
            delay = self._settings.retry.delay(retries, error, repeatable=True)
            if delay is None:
                raise stream_given_up(error)
            time.sleep(delay)
            retries += 1

    def cancel_tryon(self, tryon_id: str) -> TryOn:
        """Cancel a try-on not yet sent upstream; Conflict (TRYON_NOT_CANCELABLE) once it was."""
        return self._run(calls.cancel_tryon(tryon_id))

    def create_batch(self, body: BatchCreate, *, idempotency_key: str | None = None) -> Batch:
        """Start up to 1,000 try-ons in the batch lane, all or none; answers at once. Sent with
        an `Idempotency-Key` (yours, or one generated for this call) every retry reuses."""
        return self._run(calls.create_batch(body, idempotency_key=idempotency_key))

    def get_batch(self, batch_id: str, *, offset: int = 0, limit: int = 100) -> Batch:
        """The batch's progress and a page of its try-ons (`next_offset`: the next page)."""
        return self._run(calls.get_batch(batch_id, offset=offset, limit=limit))

    def cancel_batch(self, batch_id: str) -> Batch:
        """Cancel every try-on of the batch not yet sent upstream (they spend nothing)."""
        return self._run(calls.cancel_batch(batch_id))

    def tryon_deliveries(self, tryon_id: str) -> list[Delivery]:
        """Webhook deliveries of this try-on's events, with every attempt."""
        return self._run(calls.tryon_deliveries(tryon_id))

    # --- products ------------------------------------------------------------------------------

    def put_product(
        self,
        external_id: str,
        images: Sequence[str | ProductImage],
        *,
        title: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Product:
        """Create or replace a catalog product; `images` are public URLs or ProductImages."""
        return self._run(
            calls.put_product(
                external_id, images, title=title, description=description, metadata=metadata
            )
        )

    def get_product(self, external_id: str) -> Product:
        return self._run(calls.get_product(external_id))

    def delete_product(self, external_id: str) -> None:
        self._run(calls.delete_product(external_id))

    def list_products(self, *, limit: int = 50, cursor: str | None = None) -> ProductPage:
        """Oldest first; pass `next_cursor` back as `cursor` for the next page."""
        return self._run(calls.list_products(limit=limit, cursor=cursor))

    # --- sessions ------------------------------------------------------------------------------

    def create_session(
        self,
        external_user_id: str,
        *,
        expires_in_minutes: int = 15,
        max_try_ons: int = 5,
        products: Sequence[str] | None = None,
    ) -> Session:
        """An end-user token for one shopper's browser (with the app's publishable key)."""
        return self._run(
            calls.create_session(
                external_user_id,
                expires_in_minutes=expires_in_minutes,
                max_try_ons=max_try_ons,
                products=products,
            )
        )

    # --- webhook endpoints ---------------------------------------------------------------------

    def create_webhook_endpoint(
        self,
        url: str,
        *,
        event_types: Sequence[EventType] = (),
        description: str | None = None,
        enabled: bool = True,
        headers: dict[str, str] | None = None,
    ) -> WebhookEndpointCreated:
        """Register an endpoint; the answer's `secret` is shown this once. Not retried after
        a send (a repeat would register a second endpoint)."""
        return self._run(
            calls.create_webhook_endpoint(
                url,
                event_types=event_types,
                description=description,
                enabled=enabled,
                headers=headers,
            )
        )

    def list_webhook_endpoints(self, *, limit: int = 50, cursor: str | None = None) -> EndpointPage:
        return self._run(calls.list_webhook_endpoints(limit=limit, cursor=cursor))

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return self._run(calls.get_webhook_endpoint(endpoint_id))

    def update_webhook_endpoint(self, endpoint_id: str, changes: EndpointUpdate) -> WebhookEndpoint:
        return self._run(calls.update_webhook_endpoint(endpoint_id, changes))

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._run(calls.delete_webhook_endpoint(endpoint_id))

    def rotate_webhook_secret(
        self, endpoint_id: str, *, overlap_seconds: int | None = None
    ) -> SecretRotated:
        """A new signing secret; the previous one also signs for `overlap_seconds`."""
        return self._run(calls.rotate_webhook_secret(endpoint_id, overlap_seconds))

    def test_webhook_endpoint(self, endpoint_id: str) -> Delivery:
        """Send a signed `webhook.test` event to the endpoint."""
        return self._run(calls.test_webhook_endpoint(endpoint_id))

    def webhook_attempts(self, endpoint_id: str, *, limit: int = 50) -> list[Delivery]:
        """Recent deliveries to the endpoint with every attempt, newest first."""
        return self._run(calls.webhook_attempts(endpoint_id, limit=limit))

    def resend_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again, with its original `webhook-id`."""
        return self._run(calls.resend_delivery(endpoint_id, delivery_id))

    def recover_webhook_endpoint(self, endpoint_id: str, since: float) -> Recovered:
        """Resend every failed delivery since `since` (Unix seconds); re-enables the endpoint."""
        return self._run(calls.recover_webhook_endpoint(endpoint_id, since))

    def webhook_schedule(self) -> Schedule:
        return self._run(calls.webhook_schedule())

    def get_callback_secret(self) -> CallbackSecret:
        """The secret signing deliveries to per-request `callback_url`s."""
        return self._run(calls.get_callback_secret())

    def rotate_callback_secret(self, *, overlap_seconds: int | None = None) -> CallbackSecret:
        return self._run(calls.rotate_callback_secret(overlap_seconds))

    # --- account -------------------------------------------------------------------------------

    def get_credits(self) -> Credits:
        """The Genlook account's credit balance."""
        return self._run(calls.get_credits())

    def usage(
        self,
        *,
        from_day: str | None = None,
        to_day: str | None = None,
        group_by: UsageGroupBy = "day",
    ) -> UsageReport:
        """The app's try-ons and credits per UTC day, end user or product (days as
        `YYYY-MM-DD`; default: the last seven days)."""
        return self._run(calls.get_usage(from_day, to_day, group_by))

    def erase_customer(self, external_user_id: str) -> None:
        """GDPR erase of an end user, upstream and in the gateway. Idempotent."""
        self._run(calls.erase_customer(external_user_id))
