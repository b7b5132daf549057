"""`/v1/webhook-endpoints` and the per-app callback secret: register, rotate, test, inspect,
resend and recover deliveries."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from service import jobs
from service.api.decoding import decode_json
from service.api.deps import CTX, Ctx
from service.api.openapi import AUTHENTICATED, SECRET_ONLY, OptionalBody, errors, request_body
from service.errors import ApiError
from service.resources import Resources
from service.webhooks.deliveries import Attempt, Delivery, delivery_id
from service.webhooks.events import TEST_EVENT, event_body
from service.webhooks.models import (
    EndpointCreate,
    EndpointCreatedOut,
    EndpointOut,
    EndpointUpdate,
    SecretRotate,
    SecretRotatedOut,
    WebhookEndpoint,
    created_view,
    public_view,
    rotated_view,
)
from service.webhooks.schedule import MAX_ATTEMPTS, RETRY_DELAYS
from service.webhooks.ssrf import check_callback_url


class DeliveryOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
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


class EndpointPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[EndpointOut]
    next_cursor: str | None


class Recover(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    since: float


class Recovered(msgspec.Struct, frozen=True):
    resent: list[str]


class CallbackSecretOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    secret: str
    created_at: float
    previous_expires_at: float | None = None


class Schedule(msgspec.Struct, frozen=True, rename="camel"):
    retry_delays_seconds: list[float]
    max_attempts: int


async def check_url(res: Resources, url: str) -> None:
    """Registration-time SSRF check (the send-time check happens on every attempt); a refused
    URL is a `ForbiddenTarget`, an InvalidInput with its own code."""
    await check_callback_url(url, res.url_policy)


async def delivery_view(res: Resources, delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        target=delivery.target,
        status=delivery.status,
        attempts=await res.deliveries.attempts(delivery.id),
        created_at=delivery.created_at,
        tryon_id=delivery.tryon_id,
        next_attempt_at=delivery.next_attempt_at,
        last_error=delivery.last_error,
    )


async def resend(res: Resources, delivery: Delivery) -> bool:
    """Send again with the same webhook-id: a new series of attempts, in order for its try-on.
    False when the delivery is gone meanwhile (expired, or erased with its user)."""
    delivery.status = "pending"
    delivery.next_attempt_at = time.time()
    delivery.last_error = None
    if not await res.deliveries.save(delivery):
        return False
    await res.deliveries.requeue_in_order(delivery)
    await res.store.queue.enqueue(
        jobs.DELIVER, delivery.id, job_id=f"dlv-resend:{delivery.id}:{time.time_ns()}"
    )
    return True


async def overlap(request: Request[Any, Any, Any], res: Resources) -> int:
    """Seconds the previous secret keeps signing: the body's `overlapSeconds` or the default."""
    raw = await request.body()
    if raw.strip():
        return decode_json(raw, SecretRotate).overlap_seconds
    return int(res.settings.webhooks.rotation_overlap)


def _not_found() -> ApiError:
    return ApiError(404, "WEBHOOK_ENDPOINT_NOT_FOUND", "No such webhook endpoint.")


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["webhooks"]
    dependencies = CTX
    security = SECRET_ONLY

    async def _endpoint(self, ctx: Ctx, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await ctx.res.endpoints.get(ctx.principal.app, endpoint_id)
        if endpoint is None:
            raise _not_found()
        return endpoint

    @post(
        "/",
        status_code=201,
        responses=errors(*AUTHENTICATED, 413),
        dependencies=request_body(EndpointCreate),
    )
    async def create(
        self, request: Request[Any, Any, Any], ctx: NamedDependency[Ctx]
    ) -> EndpointCreatedOut:
        """Register an endpoint; the answer shows its signing secret (this once)."""
        body = decode_json(await request.body(), EndpointCreate)
        await check_url(ctx.res, body.url)
        return created_view(await ctx.res.endpoints.create(ctx.principal.app, body))

    @get("/", responses=errors(*AUTHENTICATED))
    async def list_endpoints(
        self,
        ctx: NamedDependency[Ctx],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter()] = None,
    ) -> EndpointPage:
        items, nxt = await ctx.res.endpoints.list(ctx.principal.app, cursor, limit)
        return EndpointPage(items=[public_view(e) for e in items], next_cursor=nxt)

    @get("/schedule", responses=errors(*AUTHENTICATED))
    async def schedule(self, ctx: NamedDependency[Ctx]) -> Schedule:
        """The published retry schedule (before WEBHOOK_TIME_SCALE)."""
        return Schedule(retry_delays_seconds=list(RETRY_DELAYS), max_attempts=MAX_ATTEMPTS)

    @get("/{endpoint_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def get_endpoint(
        self, endpoint_id: FromPath[str], ctx: NamedDependency[Ctx]
    ) -> EndpointOut:
        return public_view(await self._endpoint(ctx, endpoint_id))

    @patch(
        "/{endpoint_id:str}",
        responses=errors(*AUTHENTICATED, 404, 413),
        dependencies=request_body(EndpointUpdate),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        endpoint_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> EndpointOut:
        body = decode_json(await request.body(), EndpointUpdate)
        if isinstance(body.url, str):
            await check_url(ctx.res, body.url)
        updated = await ctx.res.endpoints.update(ctx.principal.app, endpoint_id, body)
        if updated is None:
            raise _not_found()
        return public_view(updated)

    @delete("/{endpoint_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def delete_endpoint(self, endpoint_id: FromPath[str], ctx: NamedDependency[Ctx]) -> None:
        if not await ctx.res.endpoints.delete(ctx.principal.app, endpoint_id):
            raise _not_found()

    @post(
        "/{endpoint_id:str}/rotate-secret",
        status_code=200,
        responses=errors(*AUTHENTICATED, 404, 413),
        dependencies=request_body(SecretRotate),
        operation_class=OptionalBody,
    )
    async def rotate(
        self,
        request: Request[Any, Any, Any],
        endpoint_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> SecretRotatedOut:
        """A new secret signs from now on; the old one also signs during the overlap."""
        raw = await request.body()
        overlap = decode_json(raw, SecretRotate).overlap_seconds if raw.strip() else None
        seconds = (
            overlap if overlap is not None else int(ctx.res.settings.webhooks.rotation_overlap)
        )
        rotated = await ctx.res.endpoints.rotate_secret(ctx.principal.app, endpoint_id, seconds)
        if rotated is None:
            raise _not_found()
        return rotated_view(rotated)

    @post("/{endpoint_id:str}/test", status_code=202, responses=errors(*AUTHENTICATED, 404))
    async def test(self, endpoint_id: FromPath[str], ctx: NamedDependency[Ctx]) -> DeliveryOut:
        """Send a signed `webhook.test` event to this endpoint."""
        endpoint = await self._endpoint(ctx, endpoint_id)
        now = time.time()
        event = f"evt_test_{time.time_ns()}"
        delivery = Delivery(
            id=delivery_id(event, endpoint.id),
            event_id=event,
            event_type=TEST_EVENT,
            app=endpoint.app,
            target=endpoint.id,
            url=endpoint.url,
            body=event_body(TEST_EVENT, {"endpointId": endpoint.id}).decode(),
            created_at=now,
            next_attempt_at=now,
        )
        await ctx.res.deliveries.create(delivery)
        await resend(ctx.res, delivery)
        return await delivery_view(ctx.res, delivery)

    @get("/{endpoint_id:str}/attempts", responses=errors(*AUTHENTICATED, 404))
    async def attempts(
        self,
        endpoint_id: FromPath[str],
        ctx: NamedDependency[Ctx],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[DeliveryOut]:
        """Recent deliveries to this endpoint with every attempt (newest first)."""
        endpoint = await self._endpoint(ctx, endpoint_id)
        found = await ctx.res.deliveries.by_target(endpoint.id, limit=limit)
        return [await delivery_view(ctx.res, d) for d in found]

    @post(
        "/{endpoint_id:str}/deliveries/{delivery_id:str}/resend",
        status_code=202,
        responses=errors(*AUTHENTICATED, 404),
    )
    async def resend_one(
        self, endpoint_id: FromPath[str], delivery_id: FromPath[str], ctx: NamedDependency[Ctx]
    ) -> DeliveryOut:
        endpoint = await self._endpoint(ctx, endpoint_id)
        delivery = await ctx.res.deliveries.get(delivery_id)
        if (
            delivery is None
            or delivery.target != endpoint.id
            or not await resend(ctx.res, delivery)
        ):
            raise ApiError(404, "DELIVERY_NOT_FOUND", "No such delivery for this endpoint.")
        return await delivery_view(ctx.res, delivery)

    @post(
        "/{endpoint_id:str}/recover",
        status_code=202,
        responses=errors(*AUTHENTICATED, 404, 413),
        dependencies=request_body(Recover),
    )
    async def recover(
        self,
        request: Request[Any, Any, Any],
        endpoint_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> Recovered:
        """Resend every failed delivery to this endpoint since `since` (Unix seconds), oldest
        first, each with its original webhook-id. Re-enables a disabled endpoint."""
        body = decode_json(await request.body(), Recover)
        endpoint = await self._endpoint(ctx, endpoint_id)
        if not endpoint.enabled:
            await ctx.res.endpoints.enable(ctx.principal.app, endpoint.id)
        found = await ctx.res.deliveries.by_target(endpoint.id, since=body.since, limit=10_000)
        failed = sorted((d for d in found if d.status == "failed"), key=lambda d: d.created_at)
        resent = [d.id for d in failed if await resend(ctx.res, d)]
        return Recovered(resent=resent)


class CallbackSecretController(Controller):
    path = "/v1/callback-secret"
    tags = ["webhooks"]
    dependencies = CTX
    security = SECRET_ONLY

    @get("/", responses=errors(*AUTHENTICATED))
    async def current(self, ctx: NamedDependency[Ctx]) -> CallbackSecretOut:
        """The secret that signs deliveries to per-request `callbackUrl`s."""
        versions = await ctx.res.callback_secrets.versions(ctx.principal.app)
        return CallbackSecretOut(secret=versions[0].secret, created_at=versions[0].created_at)

    @post(
        "/rotate",
        status_code=200,
        responses=errors(*AUTHENTICATED, 413),
        dependencies=request_body(SecretRotate),
        operation_class=OptionalBody,
    )
    async def rotate(
        self, request: Request[Any, Any, Any], ctx: NamedDependency[Ctx]
    ) -> CallbackSecretOut:
        seconds = await overlap(request, ctx.res)
        versions = await ctx.res.callback_secrets.rotate(ctx.principal.app, seconds)
        previous = versions[1].expires_at if len(versions) > 1 else None
        return CallbackSecretOut(
            secret=versions[0].secret,
            created_at=versions[0].created_at,
            previous_expires_at=previous,
        )
