"""`/v1/batches`: up to 1,000 try-ons in one request, run in the batch lane (docs/lanes.md):
accept (202), progress, progress as Server-Sent Events, cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, get_args

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse

from service.api.decoding import decode_json
from service.api.deps import CTX, Ctx, authenticated
from service.api.hot_params import IDEMPOTENCY_KEY, documenting, hot_headers, read_body
from service.api.json_answer import documented, json_answer
from service.api.openapi import AUTHENTICATED, SECRET_ONLY, errors, event_stream, request_body
from service.api.ops import check_intake
from service.batches.models import BatchCreate, BatchOut, BatchStatus
from service.keys import batch_event_topic

# 1,000 try-ons of a few hundred bytes each, with room to spare.
MAX_BODY = 2 * 1024 * 1024
_SSE_KEEPALIVE = 15.0


class BatchController(Controller):
    path = "/v1/batches"
    tags = ["batches"]
    dependencies = CTX

    @post(
        "/",
        status_code=202,
        request_max_body_size=MAX_BODY,
        operation_class=documenting(IDEMPOTENCY_KEY),
        responses=documented(BatchOut, 202, "Accepted: the batch, its try-ons queued.")
        | errors(*AUTHENTICATED, 402, 404, 409, 413),
        security=SECRET_ONLY,
        dependencies=request_body(BatchCreate),
    )
    async def create(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Accept up to 1,000 try-ons, all or none; 202 with the batch. Same Idempotency-Key
        and body: the same batch (and a batch cut short is accepted to its end)."""
        ctx = await authenticated(request)
        _, idempotency_key = hot_headers(request)
        await check_intake(request)
        raw = await read_body(request, MAX_BODY)
        batches = ctx.res.batches
        batch, replayed = await batches.accept(
            ctx.principal, decode_json(raw, BatchCreate), raw=raw, idempotency_key=idempotency_key
        )
        headers = {"Location": f"/v1/batches/{batch.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_answer(await batches.view(batch), status=202, headers=headers)

    @get("/{batch_id:str}", responses=errors(*AUTHENTICATED, 404), security=SECRET_ONLY)
    async def read(
        self,
        batch_id: FromPath[str],
        ctx: NamedDependency[Ctx],
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> BatchOut:
        """The batch's progress (counts by status) and a page of its try-ons, in item order."""
        batches = ctx.res.batches
        return await batches.view(await batches.owned(ctx.principal, batch_id), offset, limit)

    @get(
        "/{batch_id:str}/events",
        responses=errors(*AUTHENTICATED, 404),
        operation_class=event_stream(
            "BatchOut",
            list(get_args(BatchStatus)),
            "Server-Sent Events until the batch is completed: its progress now, then after "
            "each try-on that finishes (`event:` the batch's status, `data:` the batch as GET "
            "/v1/batches/{id} answers it, without its try-on page), and a `keep-alive` comment "
            "after 15 s without a change.",
        ),
        security=SECRET_ONLY,
    )
    async def stream(self, batch_id: FromPath[str], ctx: NamedDependency[Ctx]) -> ServerSentEvent:
        """Server-Sent Events: the batch's progress, until it is completed."""
        batches, events = ctx.res.batches, ctx.events
        batch = await batches.owned(ctx.principal, batch_id)

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            async with events.watch(batch_event_topic(batch_id)) as queue:
                while True:
                    view = await batches.view(batch, limit=1)
                    view = msgspec.structs.replace(view, tryons=[], next_offset=None)
                    yield ServerSentEventMessage(
                        data=msgspec.json.encode(view).decode(), event=view.status
                    )
                    if view.status == "completed":
                        return
                    try:
                        await asyncio.wait_for(queue.get(), timeout=_SSE_KEEPALIVE)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="keep-alive", data=None)
                    # Many try-ons finishing together make one event, not one each.
                    with contextlib.suppress(asyncio.QueueEmpty):
                        while True:
                            queue.get_nowait()

        return ServerSentEvent(messages(), headers={"Cache-Control": "no-store"})

    @delete(
        "/{batch_id:str}",
        status_code=200,
        responses=errors(*AUTHENTICATED, 404),
        security=SECRET_ONLY,
    )
    async def cancel(self, batch_id: FromPath[str], ctx: NamedDependency[Ctx]) -> BatchOut:
        """Cancel every try-on of the batch not yet sent upstream (they spend nothing); the
        ones already sent finish. The batch completes when its last try-on has."""
        batches = ctx.res.batches
        return await batches.cancel(await batches.owned(ctx.principal, batch_id))
