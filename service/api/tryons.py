"""`/v1/try-ons`: accept (202 at once), read, long-poll, stream events, cancel.

The request path only validates, writes the record and its job in one Redis script, and
answers; everything upstream happens in the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse

from service.access.browser import browser_tryon
from service.api.decoding import decode_json
from service.api.deps import BROWSER_CTX, CTX, Ctx, browser_or_server
from service.api.hot_params import (
    IDEMPOTENCY_KEY,
    WAIT,
    documenting,
    hot_headers,
    read_body,
    wait_seconds,
)
from service.api.images import read_form, read_photo
from service.api.json_answer import documented, json_answer
from service.api.ops import check_intake
from service.api.webhooks import DeliveryOut, check_url, delivery_view
from service.auth import Principal
from service.errors import ApiError
from service.imaging import sniff
from service.namespacing import end_user_idempotency_key
from service.resources import Resources
from service.tryons.intake import build_record
from service.tryons.lookups import Expected, StaleLookup
from service.tryons.models import (
    CANCELABLE,
    PersonDef,
    TryOnCreate,
    TryOnOut,
    TryOnRecord,
    public_view,
)
from service.tryons.store import IdempotencyConflict, TryOnNotFound, fingerprint

_PENDING_UPLOAD = "pending-upload"
MAX_BODY = 11 * 1024 * 1024
_SSE_KEEPALIVE = 15.0


def _not_found() -> ApiError:
    return ApiError(404, "TRYON_NOT_FOUND", "No such try-on.")


async def owned(res: Resources, principal: Principal, tryon_id: str) -> TryOnRecord:
    record = await res.store.get(tryon_id)
    # Another app's (or user's) try-on is reported exactly like a missing one.
    if record is None or record.app != principal.app:
        raise _not_found()
    if principal.external_user_id and record.external_user_id != principal.external_user_id:
        raise _not_found()
    return record


async def _parse(
    request: Request[Any, Any, Any], content_type: str
) -> tuple[bytes, bytes | None, str | None]:
    """(JSON body, person photo bytes or None, the photo's fileKey) from JSON or multipart."""
    if not content_type.startswith("multipart/form-data"):
        return await read_body(request, MAX_BODY), None, None
    form = await read_form(request)
    data = form.get("data")
    if data is None:
        raise ApiError(400, "VALIDATION_FAILED", "Multipart try-ons carry their JSON in `data`.")
    raw = data.encode() if isinstance(data, str) else await data.read()
    files = {k: v for k, v in form.multi_items() if k != "data" and not isinstance(v, str)}
    if len(files) > 1:
        raise ApiError(400, "VALIDATION_FAILED", "Only the person photo may be sent as a file.")
    for key, upload in files.items():
        return raw, await read_photo(upload), key
    return raw, None, None


async def _accept(
    res: Resources,
    principal: Principal,
    body: TryOnCreate,
    photo: bytes | None,
    *,
    record: TryOnRecord,
    expected: Expected,
    build: Callable[..., Awaitable[tuple[TryOnRecord, Expected]]],
    accept: Callable[..., Awaitable[tuple[TryOnRecord, bool]]],
) -> tuple[TryOnRecord, bool]:
    """Store the photo sent inline, then record and enqueue the try-on in one script."""
    person = None
    if photo is not None:
        image = await res.photos.save(
            principal.app,
            photo,
            external_user_id=body.external_user_id,
            keep_for_days=body.output.keep_for_days if body.output else None,
        )
        person = record.person = PersonDef(image_id=image.id)
    try:
        try:
            return await accept(record, expected=expected)
        except StaleLookup:
            # The remembered product or photo changed: build again from what Redis holds.
            res.lookups.forget(expected)
            fresh, _ = await build(fresh=True)
            fresh.person = person or fresh.person
            fresh.quota_counters = record.quota_counters
            fresh.id = record.id  # the reservation is named after it
            return await accept(fresh)
    except IdempotencyConflict as exc:
        raise ApiError(
            409,
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was used with a different request body.",
        ) from exc
    except TryOnNotFound as exc:
        raise ApiError(409, "IDEMPOTENCY_KEY_EXPIRED", "The original try-on expired.") from exc


class TryOnController(Controller):
    path = "/v1/try-ons"
    tags = ["try-ons"]
    dependencies = CTX

    @post(
        "/",
        status_code=202,
        request_max_body_size=MAX_BODY,
        operation_class=documenting(IDEMPOTENCY_KEY),
        responses=documented(TryOnOut, 202, "Accepted: the try-on, queued."),
    )
    async def create(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Accept a try-on; 202 with its id. Same Idempotency-Key + same body = same try-on."""
        # The caller and the header are read here rather than as Litestar dependency and
        # parameter: see service/api/hot_params.py.
        ctx = await browser_or_server(request)
        content_type, idempotency_key = hot_headers(request)
        await check_intake(request)  # 503 INTAKE_PAUSED while ops paused intake
        principal, res = ctx.principal, ctx.res
        raw, photo, photo_key = await _parse(request, content_type)
        body = decode_json(raw, TryOnCreate)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
            raise ApiError(400, "VALIDATION_FAILED", "Idempotency-Key must be 1-255 characters.")
        if principal.is_browser:
            body = browser_tryon(principal, body)
            if idempotency_key is not None:  # one user's key never replays another's try-on
                idempotency_key = end_user_idempotency_key(
                    principal.external_user_id, idempotency_key
                )
            if photo is not None:
                await ctx.auth.count_upload(principal)
        if body.callback_url is not None:
            await check_url(res, body.callback_url)
        if photo is not None:
            sniff(photo)  # reject a bad photo before anything is written
        gw = res.settings.gateway
        build = functools.partial(
            build_record,
            principal.app,
            body,
            redis=res.pipeline,
            keys=res.keys,
            uploaded={photo_key: _PENDING_UPLOAD} if photo_key else {},
            cache=res.lookups,
            browser=principal.is_browser,
            idempotency_key=idempotency_key,
            deadline=res.settings.worker.tryon_deadline,
        )
        record, expected = await build()
        digest = hashlib.sha256(raw)
        if photo is not None:
            digest.update(hashlib.sha256(photo).digest())
        accept = functools.partial(
            res.store.accept,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint(digest.digest()),
            idempotency_ttl=gw.idempotency_ttl,
            retention=gw.tryon_retention,
        )
        # Counted before anything is written: a full quota refuses with nothing stored. An
        # app without limits (every env-configured one) costs nothing here.
        try:
            counters = await ctx.auth.reserve_tryon(principal)
        except ApiError:
            # A full quota must not refuse the replay of a try-on it already counted.
            if idempotency_key is None or not await res.redis.exists(
                res.keys.idempotency(principal.app, idempotency_key)
            ):
                raise
            counters = []
        record.quota_counters = counters
        record.payer = principal.payer
        try:
            stored, created = await _accept(
                res,
                principal,
                body,
                photo,
                record=record,
                expected=expected,
                build=build,
                accept=accept,
            )
        except BaseException:
            if counters:
                await ctx.auth.give_back(record.id, counters)
            raise
        headers = {"Location": f"/v1/try-ons/{stored.id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
            if counters:  # a replay spends nothing new
                await ctx.auth.give_back(record.id, counters)
        return json_answer(public_view(stored), status=202, headers=headers)

    @get(
        "/{tryon_id:str}",
        operation_class=documenting(WAIT),
        responses=documented(TryOnOut, 200, "The try-on."),
    )
    async def read(self, request: Request[Any, Any, Any], tryon_id: FromPath[str]) -> ASGIResponse:
        """The try-on; with `?wait=N`, hold up to N seconds for a terminal state."""
        ctx = await browser_or_server(request)  # see create
        wait = wait_seconds(request)
        principal, res, events = ctx.principal, ctx.res, ctx.events
        record = await owned(res, principal, tryon_id)
        if record.is_terminal or wait <= 0:
            return json_answer(public_view(record))
        deadline = time.monotonic() + min(wait, res.settings.gateway.max_wait_seconds)
        async with events.watch(tryon_id) as queue:
            record = await owned(res, principal, tryon_id)
            while not record.is_terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=remaining)
                record = await owned(res, principal, tryon_id)
        return json_answer(public_view(record))

    @get("/{tryon_id:str}/events", dependencies=BROWSER_CTX)
    async def stream(
        self,
        tryon_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> ServerSentEvent:
        """Server-Sent Events: the current state, then each change, until terminal."""
        principal, res, events = ctx.principal, ctx.res, ctx.events
        await owned(res, principal, tryon_id)

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            async with events.watch(tryon_id) as queue:
                last: TryOnOut | None = None
                while True:
                    record = await owned(res, principal, tryon_id)
                    view = public_view(record)
                    if last is None or view.status != last.status:
                        yield ServerSentEventMessage(
                            data=msgspec.json.encode(view).decode(),
                            event=view.status,
                            id=view.updated_at,
                        )
                        last = view
                    if record.is_terminal:
                        return
                    # Any message (a change, or a resync after a lost subscription) means:
                    # read the record again.
                    try:
                        await asyncio.wait_for(queue.get(), timeout=_SSE_KEEPALIVE)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="keep-alive", data=None)

        return ServerSentEvent(messages(), headers={"Cache-Control": "no-store"})

    @get("/{tryon_id:str}/deliveries")
    async def deliveries(
        self, tryon_id: FromPath[str], ctx: NamedDependency[Ctx]
    ) -> list[DeliveryOut]:
        """Webhook deliveries of this try-on's events, with every attempt."""
        await owned(ctx.res, ctx.principal, tryon_id)
        found = await ctx.res.deliveries.by_tryon(tryon_id)
        return [await delivery_view(ctx.res, d) for d in found]

    @delete("/{tryon_id:str}", status_code=200)
    async def cancel(
        self,
        tryon_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> TryOnOut:
        """Cancel a try-on that has not been sent upstream; 409 once it has."""
        principal, res = ctx.principal, ctx.res
        await owned(res, principal, tryon_id)

        def to_canceled(record: TryOnRecord) -> TryOnRecord | None:
            if record.status not in CANCELABLE:
                return None
            record.status = "canceled"
            record.completed_at = time.time()
            return record

        record = await res.store.update(tryon_id, to_canceled)
        if record.status != "canceled":
            raise ApiError(
                409,
                "TRYON_NOT_CANCELABLE",
                f"The try-on is {record.status}; only queued try-ons can be canceled.",
            )
        return public_view(record)
