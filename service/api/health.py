"""`/healthz` (the process answers) and `/readyz` (it can do its job), with reasons."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from redis.exceptions import RedisError

from service.api.deps import resources
from service.ops.heartbeats import Heartbeats
from service.resources import Resources

# A pause longer than this means upstream is throttling us hard: not ready for new work.
_LONG_PAUSE = 30.0


class Health(msgspec.Struct, frozen=True):
    status: str
    reasons: list[str] = msgspec.field(default_factory=list)


@get("/healthz", tags=["ops"], include_in_schema=True)
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    tags=["ops"],
    dependencies={"res": Provide(resources, sync_to_thread=False)},
    responses={503: ResponseSpec(Health, description="Not ready; `reasons` say why.")},
)
async def readyz(res: NamedDependency[Resources]) -> Response[Health]:
    reasons: list[str] = []
    try:
        await res.redis.ping()
        if not await Heartbeats(res.redis, res.keys).live(limit=1):
            reasons.append("no live worker")
        paused = await res.budget.paused_for()
        if paused > _LONG_PAUSE:
            reasons.append(f"upstream budget paused for {paused:.0f}s")
    except (RedisError, OSError) as exc:
        reasons.append(f"redis unreachable: {type(exc).__name__}")
    status = "ready" if not reasons else "unready"
    return Response(Health(status=status, reasons=reasons), status_code=200 if not reasons else 503)
