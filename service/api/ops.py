"""`/ops/api`: the operators' API — queue status, pause/resume, failed try-ons and deliveries.

Only admin tokens (`OPS_ADMIN_TOKENS`) open it; app keys never do, whatever their app. Errors
use the one envelope; codes: ADMIN_TOKEN_REQUIRED, TRYON_NOT_FOUND, TRYON_NOT_RETRYABLE,
RETRY_WOULD_SPEND_CREDIT, DELIVERY_NOT_FOUND, VALIDATION_FAILED. See docs/ops.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from service.admin_tokens import APP_KEY_PREFIXES, parse_admin_tokens, token_digest
from service.api.decoding import decode_json
from service.api.openapi import ADMIN_ONLY, AUTHENTICATED, errors, request_body
from service.api.webhooks import DeliveryOut, delivery_view, resend
from service.errors import ApiError
from service.ops.control import OpsControl, Snapshot
from service.ops.pauses import IntakeGate, Pausable, PauseState
from service.ops.queue import ReadyJob
from service.ops.retry import retry_refusal
from service.resources import Resources
from service.tryons.models import ErrorInfo, TryOnRecord
from service.tryons.store import TryOnNotFound

# --- bodies and answers ------------------------------------------------------------------------


class PauseIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    what: Pausable
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    # Ends by itself after this long; without it, only `resume` ends it.
    seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] | None = None


class ResumeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    what: Pausable


class PauseOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    what: str
    paused: bool
    state: PauseState | None = None
    # On resume: whether it was paused at all.
    was_paused: bool | None = None


class JobsOut(msgspec.Struct, frozen=True, rename="camel"):
    queue: str
    ready: int
    deferred: int
    in_progress: int
    in_progress_exact: bool
    oldest_ready: list[ReadyJob]


class OpsTryOn(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The whole stored record (its own field names), and whether an operator may retry it."""

    record: TryOnRecord
    retryable: bool
    retry_refusal: str | None = None


class FailedTryOn(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    id: str
    app: str
    created_at: float
    failed_at: float | None
    error: ErrorInfo | None
    retryable: bool
    # Set when the try-on reached Genlook: a retry is refused (it could spend a second credit).
    generation_id: str | None = None
    create_sent: bool = False


class RetryOut(msgspec.Struct, frozen=True, rename="camel"):
    id: str
    status: str
    message: str


class DiscardOut(msgspec.Struct, frozen=True, rename="camel"):
    id: str
    discarded: bool


# --- who may call ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpsCtx:
    """The admin calling (by the name their token was given) and the process's objects."""

    actor: str
    res: Resources
    control: OpsControl


@functools.lru_cache(maxsize=4)
def _admin_tokens(spec: str) -> dict[str, str]:
    # Settings already validated the spec at start-up; parsed once per process.
    return parse_admin_tokens(spec)


def _refuse(status: int, message: str) -> ApiError:
    headers = {"WWW-Authenticate": 'Bearer realm="ops"'} if status == 401 else None
    return ApiError(status, "ADMIN_TOKEN_REQUIRED", message, headers=headers)


def authenticate_admin(authorization: str | None, spec: str) -> str:
    """The admin's name for a valid `Bearer <admin token>`; ApiError otherwise."""
    if not authorization:
        raise _refuse(401, "The ops API needs `Authorization: Bearer <admin token>`.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _refuse(401, "The ops API needs `Authorization: Bearer <admin token>`.")
    # Looked up by digest, like app keys: no timing difference between near and far guesses.
    name = _admin_tokens(spec).get(token_digest(token))
    if name is not None:
        return name
    if token.startswith(APP_KEY_PREFIXES):
        raise _refuse(403, "App keys never open the ops API; use an admin token.")
    raise _refuse(401, "The admin token is not valid.")


def control(state: State, res: Resources) -> OpsControl:
    """One per process, made on first use (it holds nothing but the shared connection)."""
    found: OpsControl | None = getattr(state, "ops_control", None)
    if found is None:
        found = OpsControl(res.redis, res.keys, res.settings.redis.queue_name)
        state.ops_control = found
    return found


def admin(request: Request[Any, Any, Any]) -> OpsCtx:
    """Dependency: a caller holding an admin token, with the shared resources."""
    state = request.app.state
    res: Resources = state.resources
    actor = authenticate_admin(request.headers.get("authorization"), res.settings.ops.admin_tokens)
    return OpsCtx(actor=actor, res=res, control=control(state, res))


OPS_CTX = {"ctx": Provide(admin, sync_to_thread=False)}


# --- the gateway's intake check ----------------------------------------------------------------


def make_intake_gate(res: Resources) -> IntakeGate:
    return IntakeGate(
        OpsControl(res.redis, res.keys, res.settings.redis.queue_name).pauses,
        retry_after=res.settings.ops.intake_retry_after,
    )


async def check_intake(request: Request[Any, Any, Any]) -> None:
    """503 INTAKE_PAUSED while intake is paused (one Redis read per second per process)."""
    gate: IntakeGate = request.app.state.intake_gate
    await gate.check()


# --- routes ----------------------------------------------------------------------------------


def _tryon_not_found() -> ApiError:
    return ApiError(404, "TRYON_NOT_FOUND", "No such try-on.")


def _delivery_not_found() -> ApiError:
    return ApiError(404, "DELIVERY_NOT_FOUND", "No such delivery.")


def _failed_view(record: TryOnRecord) -> FailedTryOn:
    return FailedTryOn(
        id=record.id,
        app=record.app,
        created_at=record.created_at,
        failed_at=record.completed_at,
        error=record.error,
        retryable=retry_refusal(record) is None,
        generation_id=record.generation_id,
        create_sent=record.create_started_at is not None,
    )


class OpsController(Controller):
    path = "/ops/api"
    tags = ["ops"]
    dependencies = OPS_CTX
    security = ADMIN_ONLY

    @get("/status", responses=errors(*AUTHENTICATED))
    async def status(self, ctx: NamedDependency[OpsCtx]) -> Snapshot:
        """Queue counts, non-terminal try-ons, pending deliveries, live workers, pauses."""
        return await ctx.control.snapshot()

    @get("/jobs", responses=errors(*AUTHENTICATED))
    async def jobs(
        self,
        ctx: NamedDependency[OpsCtx],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 10,
    ) -> JobsOut:
        """Ready/deferred counts and the oldest jobs waiting for a worker."""
        queue = ctx.control.queue
        counts = await queue.counts()
        return JobsOut(
            queue=counts.name,
            ready=counts.ready,
            deferred=counts.deferred,
            in_progress=counts.in_progress,
            in_progress_exact=counts.in_progress_exact,
            oldest_ready=await queue.oldest_ready(limit),
        )

    @post(
        "/pause",
        status_code=200,
        responses=errors(*AUTHENTICATED, 413),
        dependencies=request_body(PauseIn),
    )
    async def pause(
        self, request: Request[Any, Any, Any], ctx: NamedDependency[OpsCtx]
    ) -> PauseOut:
        """Pause `intake` (503 INTAKE_PAUSED on new try-ons) or `processing` (workers take no
        new job; jobs in flight finish). Takes effect within about a second."""
        body = decode_json(await request.body(), PauseIn)
        state = await ctx.control.pauses.pause(
            body.what, by=ctx.actor, reason=body.reason, seconds=body.seconds
        )
        return PauseOut(what=body.what, paused=True, state=state)

    @post(
        "/resume",
        status_code=200,
        responses=errors(*AUTHENTICATED, 413),
        dependencies=request_body(ResumeIn),
    )
    async def resume(
        self, request: Request[Any, Any, Any], ctx: NamedDependency[OpsCtx]
    ) -> PauseOut:
        body = decode_json(await request.body(), ResumeIn)
        was = await ctx.control.pauses.resume(body.what)
        return PauseOut(what=body.what, paused=False, was_paused=was)

    @get("/tryons/{tryon_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def tryon(self, tryon_id: FromPath[str], ctx: NamedDependency[OpsCtx]) -> OpsTryOn:
        """The full stored record of any app's try-on."""
        record = await ctx.res.store.get(tryon_id)
        if record is None:
            raise _tryon_not_found()
        refusal = retry_refusal(record)
        return OpsTryOn(
            record=record,
            retryable=refusal is None,
            retry_refusal=None if refusal is None else refusal.message,
        )

    @get("/tryons", responses=errors(*AUTHENTICATED))
    async def failed_tryons(
        self,
        ctx: NamedDependency[OpsCtx],
        status: Annotated[Literal["failed"], QueryParameter()] = "failed",
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[FailedTryOn]:
        """Recently failed try-ons (newest first) with their error and whether a retry is safe.
        Only `status=failed` is listed (the store keeps that list)."""
        return [_failed_view(r) for r in await ctx.control.failed.tryons(limit)]

    @post(
        "/tryons/{tryon_id:str}/retry", status_code=202, responses=errors(*AUTHENTICATED, 404, 409)
    )
    async def retry(self, tryon_id: FromPath[str], ctx: NamedDependency[OpsCtx]) -> RetryOut:
        """Send a failed try-on again from `queued` — only when no create reached Genlook for
        it, so a retry never spends a second credit; 409 RETRY_WOULD_SPEND_CREDIT otherwise.
        A `RESULT_NOT_STORED` try-on resumes its result's copy instead (`storing`)."""
        res = ctx.res
        try:
            record = await ctx.control.retry(
                res.store,
                tryon_id,
                res.settings.worker.tryon_deadline,
                quotas=res.quotas,
                apps=res.apps,
            )
        except TryOnNotFound:
            raise _tryon_not_found() from None
        message = (
            "Copying the result again from Genlook's completed generation: no credit is spent."
            if record.status == "storing"
            else "Queued again. No create had reached Genlook for this try-on, so this "
            "retry spends at most the one credit the try-on was always going to spend."
        )
        return RetryOut(id=record.id, status=record.status, message=message)

    @post("/tryons/{tryon_id:str}/discard", status_code=200, responses=errors(*AUTHENTICATED, 404))
    async def discard(self, tryon_id: FromPath[str], ctx: NamedDependency[OpsCtx]) -> DiscardOut:
        """Drop a try-on from the failed list (it stays failed; nothing is sent)."""
        discarded = await ctx.control.failed.discard(tryon_id)
        if not discarded and await ctx.res.store.get(tryon_id) is None:
            raise _tryon_not_found()
        return DiscardOut(id=tryon_id, discarded=discarded)

    @get("/deliveries", responses=errors(*AUTHENTICATED))
    async def failed_deliveries(
        self,
        ctx: NamedDependency[OpsCtx],
        status: Annotated[Literal["failed"], QueryParameter()] = "failed",
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[DeliveryOut]:
        """Deliveries that ended failed (every attempt used, or the endpoint gone), newest
        first."""
        found = await ctx.control.failed.deliveries(limit)
        return [await delivery_view(ctx.res, d) for d in found]

    @get("/deliveries/{delivery_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def delivery(
        self, delivery_id: FromPath[str], ctx: NamedDependency[OpsCtx]
    ) -> DeliveryOut:
        found = await ctx.res.deliveries.get(delivery_id)
        if found is None:
            raise _delivery_not_found()
        return await delivery_view(ctx.res, found)

    @post(
        "/deliveries/{delivery_id:str}/resend",
        status_code=202,
        responses=errors(*AUTHENTICATED, 404),
    )
    async def resend(self, delivery_id: FromPath[str], ctx: NamedDependency[OpsCtx]) -> DeliveryOut:
        """Send the event again with the same webhook-id, in order for its try-on."""
        found = await ctx.res.deliveries.get(delivery_id)
        if found is None or not await resend(ctx.res, found):
            raise _delivery_not_found()
        return await delivery_view(ctx.res, found)
