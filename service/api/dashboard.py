"""`/ops`: the operators' dashboard, a server-rendered page over the admin-only ops API.

A browser cannot send `Authorization: Bearer` when it navigates, so the page and its two static
files hold no data and no secret and load without a token; the page asks for the admin token,
keeps it in the tab's sessionStorage (gone when the tab closes), and fetches everything it
shows from `/ops/api/...` with the bearer header, like the CLI. The one route added here,
`GET /ops/api/history`, is admin-only too.

No build step: plain HTML, CSS and one script in `service/static/ops/`, read once at import.
The page's Content-Security-Policy allows only those same-origin files and fetches to the
gateway (no inline script, no third party), and forbids framing (the page has buttons that
pause the fleet: no clickjacking).
"""

from __future__ import annotations

from importlib import resources as importlib_resources
from typing import Annotated

import msgspec
from litestar import Response, Router, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.api.openapi import ADMIN_ONLY, AUTHENTICATED, errors
from service.api.ops import OPS_CTX, OpsCtx
from service.ops.history import WINDOW_SECONDS, Sample, read_history, take_sample

_STATIC = importlib_resources.files("service") / "static" / "ops"


def _asset(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


# Read once: the files ship with the package and never change while it runs.
_PAGE = _asset("dashboard.html")
_SCRIPT = _asset("dashboard.js")
_STYLE = _asset("dashboard.css")

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files; no-cache keeps a deployed fix visible on the next reload.
    "Cache-Control": "no-cache",
}


def _static(body: bytes, media_type: str) -> Response[bytes]:
    return Response(body, media_type=media_type, headers=_HEADERS)


@get("/", include_in_schema=False)
async def page() -> Response[bytes]:
    return _static(_PAGE, "text/html; charset=utf-8")


@get("/dashboard.js", include_in_schema=False)
async def script() -> Response[bytes]:
    return _static(_SCRIPT, "text/javascript; charset=utf-8")


@get("/dashboard.css", include_in_schema=False)
async def style() -> Response[bytes]:
    return _static(_STYLE, "text/css; charset=utf-8")


class HistoryOut(msgspec.Struct, frozen=True, rename="camel"):
    # The fleet at the time of the call (not stored): the charts' newest point and the totals.
    now: Sample
    # Stored samples of the window, oldest first; empty until workers record them.
    samples: list[Sample]
    window_seconds: float


@get(
    "/api/history",
    tags=["ops"],
    dependencies=OPS_CTX,
    responses=errors(*AUTHENTICATED),
    security=ADMIN_ONLY,
)
async def history(
    ctx: NamedDependency[OpsCtx],
    seconds: Annotated[float, QueryParameter(gt=0, le=WINDOW_SECONDS)] = WINDOW_SECONDS,
) -> HistoryOut:
    """Samples of the last hour (counters as running totals, gauges as values; rates are the
    deltas between samples) and the fleet now, for the dashboard's charts."""
    res = ctx.res
    return HistoryOut(
        now=await take_sample(res.redis, res.keys, res.settings.redis.queue_name),
        samples=await read_history(res.redis, res.keys, seconds=seconds),
        window_seconds=seconds,
    )


dashboard_router = Router(path="/ops", route_handlers=[page, script, style, history])
