"""`/v1/try-ons`: accept (202 at once), read, long-poll, stream events, cancel.

The request path only validates, writes the record and its job in one Redis script, and
answers; everything upstream happens in the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, get_args

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse

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
from service.api.openapi import (
    AUTHENTICATED,
    BROWSER,
    BROWSER_SAFE,
    SECRET_ONLY,
    errors,
    event_stream,
    request_body,
)
from service.api.ops import check_intake
from service.api.webhooks import DeliveryOut, delivery_view
from service.auth import Principal
from service.domain_errors import Conflict, InvalidInput, NotFound
from service.events import EventHub
from service.resources import Resources
from service.tryons.models import (
    TryOnCreate,
    TryOnOut,
    TryOnRecord,
    TryOnStatus,
)

MAX_BODY = 11 * 1024 * 1024
_SSE_KEEPALIVE = 15.0


def _not_found() -> NotFound:
    return NotFound("TRYON_NOT_FOUND", "No such try-on.")


async def owned(res: Resources, principal: Principal, tryon_id: str) -> TryOnRecord:
    record = await res.store.get(tryon_id)
    # Another app's (or user's) try-on is reported exactly like a missing one.
    if record is None or record.app != principal.app:
        raise _not_found()
    if principal.external_user_id and record.external_user_id != principal.external_user_id:
        raise _not_found()
    return record


async def until_terminal(
    events: EventHub,
    tryon_id: str,
    load: Callable[[], Awaitable[TryOnRecord]],
    deadline: float,
) -> TryOnRecord:
    """The try-on (`load` reads it, refusing what the caller may not see) once terminal, or as
    it is at `deadline` (monotonic); woken by its events, not by polling Redis."""
    async with events.watch(tryon_id) as queue:
        record = await load()
        while not record.is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.get(), timeout=remaining)
            record = await load()
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
        raise InvalidInput("VALIDATION_FAILED", "Multipart try-ons carry their JSON in `data`.")
    raw = data.encode() if isinstance(data, str) else await data.read()
    files = {k: v for k, v in form.multi_items() if k != "data" and not isinstance(v, str)}
    if len(files) > 1:
        raise InvalidInput("VALIDATION_FAILED", "Only the person photo may be sent as a file.")
    for key, upload in files.items():
        return raw, await read_photo(upload), key
    return raw, None, None


class TryOnController(Controller):
    path = "/v1/try-ons"
    tags = ["try-ons"]
    dependencies = CTX

    @post(
        "/",
        status_code=202,
        request_max_body_size=MAX_BODY,
        operation_class=documenting(IDEMPOTENCY_KEY),
        responses=documented(TryOnOut, 202, "Accepted: the try-on, queued.")
        | errors(*BROWSER, 402, 404, 409, 413, 422),
        security=BROWSER_SAFE,
        dependencies=request_body(TryOnCreate),
    )
    async def create(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Accept a try-on; 202 with its id. Same Idempotency-Key + same body = same try-on."""
        # The caller and the header are read here rather than as Litestar dependency and
        # parameter: see service/api/hot_params.py.
        ctx = await browser_or_server(request)
        content_type, idempotency_key = hot_headers(request)
        await check_intake(request)  # 503 INTAKE_PAUSED while ops paused intake
        raw, photo, photo_key = await _parse(request, content_type)
        accepted = await ctx.res.intake.accept(
            ctx.principal,
            decode_json(raw, TryOnCreate),
            raw=raw,
            photo=photo,
            photo_key=photo_key,
            idempotency_key=idempotency_key,
        )
        stored = accepted.record
        headers = {"Location": f"/v1/try-ons/{stored.id}"}
        if accepted.replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_answer(await ctx.res.links.view(stored), status=202, headers=headers)

    @get(
        "/{tryon_id:str}",
        operation_class=documenting(WAIT),
        responses=documented(TryOnOut, 200, "The try-on.") | errors(*BROWSER, 404),
        security=BROWSER_SAFE,
    )
    async def read(self, request: Request[Any, Any, Any], tryon_id: FromPath[str]) -> ASGIResponse:
        """The try-on; with `?wait=N`, hold up to N seconds for a terminal state."""
        ctx = await browser_or_server(request)  # see create
        wait = wait_seconds(request)
        principal, res, events = ctx.principal, ctx.res, ctx.events
        record = await owned(res, principal, tryon_id)
        if record.is_terminal or wait <= 0:
            return json_answer(await res.links.view(record))
        deadline = time.monotonic() + min(wait, res.settings.gateway.max_wait_seconds)
        record = await until_terminal(
            events, tryon_id, lambda: owned(res, principal, tryon_id), deadline
        )
        return json_answer(await res.links.view(record))

    @get(
        "/{tryon_id:str}/events",
        dependencies=BROWSER_CTX,
        responses=errors(*BROWSER, 404),
        operation_class=event_stream(
            "TryOnOut",
            list(get_args(TryOnStatus)),
            "Server-Sent Events until the try-on is terminal: one per status (`event:` the "
            "status, `data:` the try-on as GET /v1/try-ons/{id} answers it, `id:` its "
            "`updatedAt`), and a `keep-alive` comment after 15 s without a change.",
        ),
        security=BROWSER_SAFE,
    )
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
                    view = await res.links.view(record)
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

    @get("/{tryon_id:str}/deliveries", responses=errors(*AUTHENTICATED, 404), security=SECRET_ONLY)
    async def deliveries(
        self, tryon_id: FromPath[str], ctx: NamedDependency[Ctx]
    ) -> list[DeliveryOut]:
        """Webhook deliveries of this try-on's events, with every attempt."""
        await owned(ctx.res, ctx.principal, tryon_id)
        found = await ctx.res.deliveries.by_tryon(tryon_id)
        return [await delivery_view(ctx.res, d) for d in found]

    @delete(
        "/{tryon_id:str}",
        status_code=200,
        dependencies=BROWSER_CTX,
        responses=errors(*BROWSER, 404, 409),
        security=BROWSER_SAFE,
    )
    async def cancel(
        self,
        tryon_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> TryOnOut:
        """Cancel a try-on that has not been sent upstream; 409 once it has. A browser may
        cancel its own (the JS client does when its caller gives up waiting)."""
        principal, res = ctx.principal, ctx.res
        await owned(res, principal, tryon_id)
        record = await res.store.cancel(tryon_id)
        if record.status != "canceled":
            raise Conflict(
                "TRYON_NOT_CANCELABLE",
                f"The try-on is {record.status}; only try-ons not yet sent upstream can be "
                "canceled.",
            )
        return await res.links.view(record)
