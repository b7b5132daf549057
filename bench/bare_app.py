"""The floor for `bench.gateway_rps`: a bare Litestar app on the same routes, each handler
returning a small JSON, no authentication, no Redis. Served by uvicorn exactly like the
gateway (one process, uvloop + httptools, log level warning, proxy headers, no `server` header).

    uv run python -m uvicorn bench.bare_app:create_app --factory --port 8099 --log-level warning \
        --no-server-header
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get, post


@post("/v1/try-ons", status_code=202)
async def create() -> dict[str, Any]:
    return {"id": "to_bare", "status": "queued"}


@get("/v1/try-ons/{tryon_id:str}")
async def read(tryon_id: str) -> dict[str, Any]:
    return {"id": tryon_id, "status": "completed"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[create, read], debug=False)
