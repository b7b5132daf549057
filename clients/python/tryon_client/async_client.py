"""The asyncio client: `Client`'s methods (client.py, where each is documented), awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
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


class AsyncClient:
    """tryon-gateway's `/v1` API with an app's secret key, for asyncio code.

    async with AsyncClient("https://gateway.example", "sk_...") as client:
        image = await client.upload_photo(Path("person.jpg"))
        created = await client.create_tryon("red-tee", image_id=image.id)
        async for tryon in client.events(created.id):
            print(tryon.status)
    """

    def __init__(
        self,
        base_url: str,
        secret_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = Settings(base_url, secret_key, timeout, retry or RetryPolicy())
        self._http = httpx.AsyncClient(transport=transport, **self._settings.client_options())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, call: Call[T]) -> T:
        retries = 0
        while True:
            error: TryonError
            request = self._http.build_request(
                call.method, call.path, **self._settings.request_options(call)
            )
            try:
                return decode(call, await self._http.send(request))
            except httpx.TransportError as exc:
                error, sent = transport_error(exc)
            except ApiError as exc:
                error, sent = exc, True
            delay = self._settings.retry.delay(
                retries, error, repeatable=call.repeatable, sent=sent
            )
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            retries += 1

    # --- photos --------------------------------------------------------------------------------

    async def upload_photo(
        self,
        photo: PhotoInput,
        *,
        filename: str | None = None,
        crop: bool | None = None,
        keep_for_days: KeepForDays | None = None,
        external_user_id: str | None = None,
    ) -> Image:
        return await self._run(
            calls.upload_photo(
                photo,
                filename=filename,
                crop=crop,
                keep_for_days=keep_for_days,
                external_user_id=external_user_id,
            )
        )

    # --- try-ons -------------------------------------------------------------------------------

    async def create_tryon(
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
        return await self._run(
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

    async def get_tryon(self, tryon_id: str, *, wait: float | None = None) -> TryOn:
        return await self._run(calls.get_tryon(tryon_id, wait=wait))

    # The deadline is split into long-polls, as Client.wait does: a timeout argument, not
    # asyncio.timeout around the call.
    async def wait(
        self,
        tryon_id: str,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109
    ) -> TryOn:
        deadline = time.monotonic() + timeout
        while True:
            tryon = await self.get_tryon(tryon_id, wait=wait_chunk(deadline - time.monotonic()))
            if tryon.is_terminal:
                return tryon
            if time.monotonic() >= deadline:
                raise WaitTimeout(tryon)

    async def events(self, tryon_id: str) -> AsyncIterator[TryOn]:
        reader, retries = StreamReader(), 0
        while True:
            failure: Exception | None = None
            try:
                async with self._http.stream(
                    "GET", calls.tryon_events_path(tryon_id), **self._settings.stream_options()
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        raise api_error(response.status_code, response.content, response.headers)
                    reader.connected()
                    async for line in response.aiter_lines():
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
            await asyncio.sleep(delay)
            retries += 1

    async def cancel_tryon(self, tryon_id: str) -> TryOn:
        return await self._run(calls.cancel_tryon(tryon_id))

    async def create_batch(self, body: BatchCreate, *, idempotency_key: str | None = None) -> Batch:
        """Start up to 1,000 try-ons in the batch lane, all or none; answers at once. Sent with
        an `Idempotency-Key` (yours, or one generated for this call) every retry reuses."""
        return await self._run(calls.create_batch(body, idempotency_key=idempotency_key))

    async def get_batch(self, batch_id: str, *, offset: int = 0, limit: int = 100) -> Batch:
        """The batch's progress and a page of its try-ons (`next_offset`: the next page)."""
        return await self._run(calls.get_batch(batch_id, offset=offset, limit=limit))

    async def cancel_batch(self, batch_id: str) -> Batch:
        """Cancel every try-on of the batch not yet sent upstream (they spend nothing)."""
        return await self._run(calls.cancel_batch(batch_id))

    async def tryon_deliveries(self, tryon_id: str) -> list[Delivery]:
        return await self._run(calls.tryon_deliveries(tryon_id))

    # --- products ------------------------------------------------------------------------------

    async def put_product(
        self,
        external_id: str,
        images: Sequence[str | ProductImage],
        *,
        title: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Product:
        return await self._run(
            calls.put_product(
                external_id, images, title=title, description=description, metadata=metadata
            )
        )

    async def get_product(self, external_id: str) -> Product:
        return await self._run(calls.get_product(external_id))

    async def delete_product(self, external_id: str) -> None:
        await self._run(calls.delete_product(external_id))

    async def list_products(self, *, limit: int = 50, cursor: str | None = None) -> ProductPage:
        return await self._run(calls.list_products(limit=limit, cursor=cursor))

    # --- sessions ------------------------------------------------------------------------------

    async def create_session(
        self,
        external_user_id: str,
        *,
        expires_in_minutes: int = 15,
        max_try_ons: int = 5,
        products: Sequence[str] | None = None,
    ) -> Session:
        return await self._run(
            calls.create_session(
                external_user_id,
                expires_in_minutes=expires_in_minutes,
                max_try_ons=max_try_ons,
                products=products,
            )
        )

    # --- webhook endpoints ---------------------------------------------------------------------

    async def create_webhook_endpoint(
        self,
        url: str,
        *,
        event_types: Sequence[EventType] = (),
        description: str | None = None,
        enabled: bool = True,
        headers: dict[str, str] | None = None,
    ) -> WebhookEndpointCreated:
        return await self._run(
            calls.create_webhook_endpoint(
                url,
                event_types=event_types,
                description=description,
                enabled=enabled,
                headers=headers,
            )
        )

    async def list_webhook_endpoints(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> EndpointPage:
        return await self._run(calls.list_webhook_endpoints(limit=limit, cursor=cursor))

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return await self._run(calls.get_webhook_endpoint(endpoint_id))

    async def update_webhook_endpoint(
        self, endpoint_id: str, changes: EndpointUpdate
    ) -> WebhookEndpoint:
        return await self._run(calls.update_webhook_endpoint(endpoint_id, changes))

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        await self._run(calls.delete_webhook_endpoint(endpoint_id))

    async def rotate_webhook_secret(
        self, endpoint_id: str, *, overlap_seconds: int | None = None
    ) -> SecretRotated:
        return await self._run(calls.rotate_webhook_secret(endpoint_id, overlap_seconds))

    async def test_webhook_endpoint(self, endpoint_id: str) -> Delivery:
        return await self._run(calls.test_webhook_endpoint(endpoint_id))

    async def webhook_attempts(self, endpoint_id: str, *, limit: int = 50) -> list[Delivery]:
        return await self._run(calls.webhook_attempts(endpoint_id, limit=limit))

    async def resend_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery:
        return await self._run(calls.resend_delivery(endpoint_id, delivery_id))

    async def recover_webhook_endpoint(self, endpoint_id: str, since: float) -> Recovered:
        return await self._run(calls.recover_webhook_endpoint(endpoint_id, since))

    async def webhook_schedule(self) -> Schedule:
        return await self._run(calls.webhook_schedule())

    async def get_callback_secret(self) -> CallbackSecret:
        return await self._run(calls.get_callback_secret())

    async def rotate_callback_secret(self, *, overlap_seconds: int | None = None) -> CallbackSecret:
        return await self._run(calls.rotate_callback_secret(overlap_seconds))

    # --- account -------------------------------------------------------------------------------

    async def get_credits(self) -> Credits:
        return await self._run(calls.get_credits())

    async def usage(
        self,
        *,
        from_day: str | None = None,
        to_day: str | None = None,
        group_by: UsageGroupBy = "day",
    ) -> UsageReport:
        return await self._run(calls.get_usage(from_day, to_day, group_by))

    async def erase_customer(self, external_user_id: str) -> None:
        await self._run(calls.erase_customer(external_user_id))
