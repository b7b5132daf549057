"""Dependencies shared by the route modules.

Routes take ONE dependency, `ctx`: Litestar resolves two or more independent dependencies
concurrently in an anyio task group, which cost ~80 µs per request for what are attribute
lookups (docs/benchmarks.md, F5). A single dependency is awaited directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import Provide

from service import logs
from service.auth import Principal, require_secret
from service.events import EventHub
from service.resources import Resources


@dataclass(frozen=True, slots=True)
class Ctx:
    """The authenticated caller and the process's shared objects."""

    principal: Principal
    res: Resources
    events: EventHub


def resources(request: Request[Any, Any, Any]) -> Resources:
    res: Resources = request.app.state.resources
    return res


def authenticated(request: Request[Any, Any, Any]) -> Ctx:
    """Dependency: a caller holding a secret key, with the shared resources."""
    state = request.app.state
    principal = require_secret(request)
    logs.app_id.set(principal.app)
    return Ctx(principal, state.resources, state.hub)


CTX = {"ctx": Provide(authenticated, sync_to_thread=False)}
