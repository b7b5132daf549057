"""The control API under /_emulator/: not part of Genlook, unauthenticated, for tests and demos."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Request, Response, Router, delete, get, post, put
from msgspec import Meta

from emulator.clock import iso
from emulator.deps import RuntimeDep, base_url, path_id
from emulator.errors import ApiError, FieldIssue, validation_failed
from emulator.faults import ENDPOINTS, Mode
from emulator.models import Account
from emulator.views import generation_view, product_view

T = TypeVar("T")

Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]


class ResetBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    credits: Annotated[int, Meta(ge=0)] | None = None
    rate_limit: Annotated[int, Meta(ge=0)] | None = None
    speed: Positive | None = None
    duration_median: Positive | None = None
    duration_sigma: NonNegative | None = None
    has_logo: bool | None = None
    result_url_lifetime: Positive | None = None


class AccountBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    credits: int | None = None
    rate_limit: Annotated[int, Meta(ge=0)] | None = None
    has_logo: bool | None = None


class AdvanceBody(msgspec.Struct, forbid_unknown_fields=True):
    seconds: NonNegative


class FaultBody(msgspec.Struct, forbid_unknown_fields=True):
    endpoint: str
    status: Annotated[int, Meta(ge=400, le=599)] | None = None
    code: str | None = None
    rate: Annotated[float, Meta(ge=0, le=1)] = 1.0
    count: Annotated[int, Meta(ge=0)] | None = None
    latency: NonNegative = 0.0
    mode: Literal["error", "timeout", "drop", "drop_after"] | None = None


class StormBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    seconds: Positive
    retry_after: NonNegative = 1.0


async def _decode(request: Request[Any, Any, Any], kind: type[T], *, optional: bool = False) -> T:
    raw = await request.body()
    if not raw.strip() and optional:
        raw = b"{}"
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        path = where.rstrip("`").lstrip(".")
        raise validation_failed([FieldIssue(path=path, message=message)]) from None
    except msgspec.DecodeError:
        raise validation_failed([FieldIssue(path="", message="Invalid JSON")]) from None


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "apiKey": account.api_key,
        "credits": account.credits,
        "rateLimit": account.rate_limit,
        "hasLogo": account.has_logo,
    }


@post("/reset", status_code=200)
async def reset(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
    body = await _decode(request, ResetBody, optional=True)
    config = runtime.startup_config.with_overrides(
        credits=body.credits,
        rate_limit=body.rate_limit,
        speed=body.speed,
        duration_median=body.duration_median,
        duration_sigma=body.duration_sigma,
        has_logo=body.has_logo,
        result_url_lifetime=body.result_url_lifetime,
    )
    runtime.reset(config)
    return {
        "apiKey": config.api_key,
        "credits": config.credits,
        "rateLimit": config.rate_limit,
        "speed": config.speed,
        "durationMedian": config.duration_median,
        "durationSigma": config.duration_sigma,
        "hasLogo": config.has_logo,
        "resultUrlLifetime": config.result_url_lifetime,
    }


@put("/accounts/{api_key:str}", status_code=200)
async def put_account(
    request: Request[Any, Any, Any], api_key: str, runtime: RuntimeDep
) -> dict[str, Any]:
    body = await _decode(request, AccountBody, optional=True)
    config = runtime.config
    account = runtime.store.accounts.get(api_key)
    if account is None:
        account = Account(
            api_key=api_key,
            credits=config.credits,
            rate_limit=config.rate_limit,
            has_logo=config.has_logo,
        )
        runtime.store.accounts[api_key] = account
    if body.credits is not None:
        account.credits = body.credits
    if body.rate_limit is not None:
        account.rate_limit = body.rate_limit
    if body.has_logo is not None:
        account.has_logo = body.has_logo
    return _account_json(account)


@post("/clock/advance", status_code=200)
async def advance_clock(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, str]:
    body = await _decode(request, AdvanceBody)
    runtime.clock.advance(body.seconds)
    return {"now": iso(runtime.clock.now())}


@get("/clock")
async def read_clock(runtime: RuntimeDep) -> dict[str, Any]:
    return {"now": iso(runtime.clock.now()), "speed": runtime.clock.speed}


def _mode(body: FaultBody) -> Mode:
    if body.mode is not None:
        return body.mode
    if body.status is None and body.code is None and body.latency > 0:
        return "latency"
    return "error"


@post("/faults", status_code=200)
async def add_fault(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, str]:
    body = await _decode(request, FaultBody)
    if body.endpoint != "*" and body.endpoint not in ENDPOINTS:
        names = ", ".join(sorted(ENDPOINTS))
        issue = FieldIssue(path="endpoint", message=f"Expected '*' or one of: {names}")
        raise validation_failed([issue])
    fault = runtime.faults.add(
        endpoint=body.endpoint,
        mode=_mode(body),
        status=body.status or 500,
        code=body.code,
        rate=body.rate,
        count=body.count,
        latency=body.latency,
    )
    return {"id": fault.id}


@delete("/faults", status_code=204)
async def clear_faults(runtime: RuntimeDep) -> None:
    runtime.faults.clear()


@post("/storm", status_code=200)
async def storm(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
    body = await _decode(request, StormBody)
    runtime.faults.start_storm(body.seconds, body.retry_after)
    return {"seconds": body.seconds, "retryAfter": body.retry_after}


@get("/counters")
async def counters(runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.counters.as_json()


@get("/generations")
async def list_generations(runtime: RuntimeDep) -> dict[str, Any]:
    """Every generation, oldest first: lets a test check "at most one per try-on"."""
    items = sorted(runtime.store.generations.values(), key=lambda g: g.created_at)
    return {
        "items": [
            {
                "generationId": g.id,
                "status": g.status,
                "owner": g.owner,
                "externalUserId": g.external_user_id,
                "productExternalId": g.product.external_id,
            }
            for g in items
        ]
    }


@get("/generations/{generation_id:path}")
async def inspect_generation(
    request: Request[Any, Any, Any], generation_id: str, runtime: RuntimeDep
) -> dict[str, Any]:
    gen = runtime.store.generations.get(path_id(generation_id))
    if gen is None:
        raise ApiError(404, "GENERATION_NOT_FOUND", "No such generation.")
    clock = runtime.clock
    public = msgspec.to_builtins(
        generation_view(gen, runtime, base_url(request), with_product=True)
    )
    return {
        **public,
        "owner": gen.owner,
        "externalUserId": gen.external_user_id,
        "mock": gen.mock,
        "charged": gen.charged,
        "watermark": gen.watermark,
        "aiLabel": gen.ai_label,
        "keepForDays": gen.keep_for_days,
        "plannedDurationSeconds": gen.duration,
        "history": [{"status": s, "at": iso(clock.at(t))} for s, t in gen.history],
        "product": product_view(gen.product, clock),
    }


@get("/assets")
async def list_assets(request: Request[Any, Any, Any], runtime: RuntimeDep) -> dict[str, Any]:
    root = base_url(request)
    names = [f"{name}.png" for name in runtime.samples] + ["person.jpeg"]
    return {"assets": [{"name": n, "url": f"{root}/_emulator/assets/{n}"} for n in names]}


@get("/assets/{name:str}")
async def get_asset(name: str, runtime: RuntimeDep) -> Response[bytes]:
    if name == "person.jpeg":
        return Response(runtime.person_sample, media_type="image/jpeg")
    data = runtime.samples.get(name.removesuffix(".png"))
    if data is None or not name.endswith(".png"):
        raise ApiError(404, "NOT_FOUND", f"No asset '{name}'.")
    return Response(data, media_type="image/png")


# Storage, not the API: no key, no rate limit; counted and open to faults as `files`.
@get("/files/{key:path}", opt={"endpoint": "files", "public": True})
async def get_file(
    key: str,
    runtime: RuntimeDep,
    expires: str | None = None,
    signature: str | None = None,
) -> Response[bytes]:
    now = runtime.clock.seconds()
    refusal = runtime.links.check(path_id(key), expires, signature, now)
    if refusal is not None:
        raise ApiError(403, refusal, "This URL is not valid (expired, or not signed).")
    stored = runtime.store.file(path_id(key), now)
    if stored is None:
        raise ApiError(404, "NOT_FOUND", "This file has expired or was erased.")
    return Response(stored.data, media_type=stored.content_type)


control_router = Router(
    path="/_emulator",
    route_handlers=[
        reset,
        put_account,
        advance_clock,
        read_clock,
        add_fault,
        clear_faults,
        storm,
        counters,
        list_generations,
        inspect_generation,
        list_assets,
        get_asset,
        get_file,
    ],
)
