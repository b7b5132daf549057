"""Dependencies shared by the route modules.

Routes take ONE dependency, `ctx`: Litestar resolves two or more independent dependencies
concurrently in an anyio task group, which cost ~80 µs per request for what are attribute
lookups. A single dependency is awaited directly. The two hottest routes (create and read a
try-on) call `browser_or_server` themselves: even one dependency costs Litestar ~36k
instructions per request (docs/benchmarks.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import Provide

from service import logs
from service.auth import Authenticator, Principal
from service.events import EventHub
from service.resources import Resources


@dataclass(frozen=True, slots=True)
class Ctx:
    """The authenticated caller and the process's shared objects."""

    principal: Principal
    res: Resources
    events: EventHub
    auth: Authenticator


def resources(request: Request[Any, Any, Any]) -> Resources:
    res: Resources = request.app.state.resources
    return res


async def authenticated(request: Request[Any, Any, Any]) -> Ctx:
    """Dependency: a caller holding a secret key, with the shared resources."""
    return await _context(request, browser_safe=False)


async def browser_or_server(request: Request[Any, Any, Any]) -> Ctx:
    """Dependency (or a plain call) of the browser-safe routes: a secret key, or a publishable
    key with an end-user token (or anonymous, if the app allows it) within the app's limits."""
    return await _context(request, browser_safe=True)


async def _context(request: Request[Any, Any, Any], *, browser_safe: bool) -> Ctx:
    state = request.app.state
    auth: Authenticator = state.auth
    principal = await auth.authenticate(request, browser_safe=browser_safe)
    logs.app_id.set(principal.app)
    return Ctx(principal, state.resources, state.hub, auth)


CTX = {"ctx": Provide(authenticated)}
BROWSER_CTX = {"ctx": Provide(browser_or_server)}
