"""For `bench.overheads`: the bare app's GET with one Litestar dependency and with three
independent ones (as `TryOnController` declares: principal, res, events). Litestar resolves a
batch of independent dependencies concurrently in an anyio task group."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get
from litestar.di import NamedDependency, Provide


def _a(request: Request[Any, Any, Any]) -> int:
    return 1


def _b(request: Request[Any, Any, Any]) -> int:
    return 2


def _c(request: Request[Any, Any, Any]) -> int:
    return 3


@get("/one/{tryon_id:str}", dependencies={"pa": Provide(_a, sync_to_thread=False)})
async def one(tryon_id: str, pa: NamedDependency[int]) -> dict[str, Any]:
    return {"id": tryon_id, "status": "completed"}


@get(
    "/three/{tryon_id:str}",
    dependencies={
        "pa": Provide(_a, sync_to_thread=False),
        "pb": Provide(_b, sync_to_thread=False),
        "pc": Provide(_c, sync_to_thread=False),
    },
)
async def three(
    tryon_id: str, pa: NamedDependency[int], pb: NamedDependency[int], pc: NamedDependency[int]
) -> dict[str, Any]:
    return {"id": tryon_id, "status": "completed"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[one, three], debug=False)
