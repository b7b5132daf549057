"""`POST /try-on`, `POST /try-on/sync`, `GET /generations/{id}`: Genlook's generations, each
one of the gateway's try-ons (same id, same pipeline)."""

from __future__ import annotations

import time
from typing import Any

from genlook_wire import normalize
from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from service.api.genlook_compat.body import MULTIPART_LIMIT, read_payload
from service.api.genlook_compat.context import GenlookCtx, Surface, genlook_caller
from service.api.genlook_compat.openapi import GENLOOK_KEY, errors
from service.api.json_answer import documented, json_answer
from service.api.openapi import request_body
from service.api.ops import check_intake
from service.api.tryons import until_terminal
from service.auth import Principal
from service.domain_errors import NotFound
from service.genlook_compat.generations import Accepted, Generation, generation
from service.genlook_compat.tryons import Started
from service.tryons.models import TryOnRecord

# Genlook's sync endpoint holds up to 90 s of its time (GENLOOK_CLOCK_SPEED: 1 but in tests).
SYNC_HOLD = 90.0


def _not_found(generation_id: str) -> NotFound:
    return NotFound("GENERATION_NOT_FOUND", f"Generation '{generation_id}' not found.")


async def _owned(s: Surface, principal: Principal, generation_id: str) -> TryOnRecord:
    record = await s.res.store.get(generation_id)
    # Another app's try-on answers as a missing one (Genlook says 403: the gateway never
    # tells an app that another's id exists).
    if record is None or record.app != principal.app:
        raise _not_found(generation_id)
    return record


async def _start(request: Request[Any, Any, Any]) -> tuple[GenlookCtx, Started]:
    ctx = await genlook_caller(request)
    await check_intake(request)  # 503 INTAKE_PAUSED (Retry-After) while ops paused intake
    body, files, raw = await read_payload(request)
    started = await ctx.surface.tryons.start(ctx.principal, normalize.try_on(body), files, raw)
    return ctx, started


# The JSON form of the body; the multipart form (`data` + file parts named by `fileKey`) too.
_BODY = request_body(dict[str, Any])


class GenlookTryOnController(Controller):
    tags = ["genlook-compat"]
    security = GENLOOK_KEY

    @post(
        "/try-on",
        status_code=200,
        request_max_body_size=MULTIPART_LIMIT,
        responses=documented(Accepted, 200, "Started: poll GET /generations/{id}.")
        | errors(400, 401, 402, 404, 409, 429, 503),
        dependencies=_BODY,
    )
    async def create(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Start a generation (Genlook's current and deprecated bodies, JSON or multipart)."""
        _, started = await _start(request)
        return json_answer(
            Accepted(
                generation_id=started.record.id,
                status="PENDING",
                product_external_id=started.product_external_id,
            )
        )

    @post(
        "/try-on/sync",
        status_code=200,
        request_max_body_size=MULTIPART_LIMIT,
        responses=documented(Generation, 200, "Finished (COMPLETED or FAILED) within 90 s.")
        | documented(Generation, 202, "Still running after 90 s: poll GET /generations/{id}.")
        | errors(400, 401, 402, 404, 409, 429, 503),
        dependencies=_BODY,
    )
    async def create_sync(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Start a generation and hold up to 90 s from arrival for its end. Leaving early
        cancels nothing: the try-on goes on, and its id reads it."""
        arrived = time.monotonic()
        ctx, started = await _start(request)
        s = ctx.surface
        hold = SYNC_HOLD / s.res.settings.genlook.clock_speed
        generation_id = started.record.id
        record = await until_terminal(
            s.events, generation_id, lambda: _owned(s, ctx.principal, generation_id), arrived + hold
        )
        view = generation(await s.res.links.view(record), started.product_external_id)
        return json_answer(view, status=200 if record.is_terminal else 202)

    @get(
        "/generations/{generation_id:str}",
        responses=documented(Generation, 200, "The generation.") | errors(400, 401, 404, 429, 503),
    )
    async def read(
        self, request: Request[Any, Any, Any], generation_id: FromPath[str]
    ) -> ASGIResponse:
        """A generation: PENDING, PROCESSING, COMPLETED (`resultImageUrl`, the gateway's
        stored result) or FAILED (`errorCode`, `errorMessage`)."""
        ctx = await genlook_caller(request)
        record = await _owned(ctx.surface, ctx.principal, generation_id)
        return json_answer(generation(await ctx.surface.res.links.view(record)))
