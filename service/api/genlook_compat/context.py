"""Who calls `/tryon/v1` (an app's secret key as `x-api-key`, as Genlook's key is sent) and
the objects its routes use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import Provide

from service import logs
from service.auth import Authenticator, Principal
from service.domain_errors import Unauthenticated
from service.events import EventHub
from service.genlook_compat.products import GenlookCatalog, ProductImages
from service.genlook_compat.tryons import GenlookTryOns
from service.resources import Resources


@dataclass(frozen=True, slots=True)
class Surface:
    """The process's objects behind `/tryon/v1`, made once from its resources."""

    res: Resources
    events: EventHub
    catalog: GenlookCatalog
    images: ProductImages
    tryons: GenlookTryOns


@dataclass(frozen=True, slots=True)
class GenlookCtx:
    principal: Principal
    surface: Surface


def surface(request: Request[Any, Any, Any]) -> Surface:
    state = request.app.state
    made: Surface | None = state.get("genlook_surface")
    if made is None:
        res: Resources = state.resources
        catalog = GenlookCatalog(res.redis, res.keys, res.catalog)
        images = ProductImages(res.results, res.links)
        tryons = GenlookTryOns(
            intake=res.intake,
            catalog=catalog,
            images=images,
            keys=res.keys,
            pipeline=res.pipeline,
            accounts=res.accounts,
        )
        made = state.genlook_surface = Surface(res, state.hub, catalog, images, tryons)
    return made


def _api_key(request: Request[Any, Any, Any]) -> str | None:
    for name, value in request.scope["headers"]:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
    return None


async def genlook_caller(request: Request[Any, Any, Any]) -> GenlookCtx:
    """An app's secret key in `x-api-key`. Publishable keys and end-user tokens open nothing
    here: this surface has no browser-safe route (a Genlook key never reaches a browser)."""
    key = _api_key(request)
    if not key:
        raise Unauthenticated("MISSING_API_KEY", "Send your API key in the `x-api-key` header.")
    auth: Authenticator = request.app.state.auth
    found = await auth.ring.lookup(key)
    if found is None or found[0].kind != "secret":
        raise Unauthenticated("INVALID_API_KEY", "The API key is not valid.")
    info, app = found
    logs.app_id.set(info.app)
    principal = Principal(app=info.app, kind="secret", policy=app.policy if app else None)
    return GenlookCtx(principal, surface(request))


GENLOOK_CTX = {"ctx": Provide(genlook_caller)}
