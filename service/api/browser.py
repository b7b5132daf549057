"""What the gateway serves to browsers besides the API: the JavaScript client at `/sdk/tryon.js`
(always) and, when `GATEWAY_DEMO_APP` names an app, a demo storefront at `/demo`.

The SDK is a static ES module that any storefront imports from the gateway, so it is served
with `Access-Control-Allow-Origin: *` (module scripts are fetched in CORS mode; the file holds
no data) and an ETag, with a short max-age so a deployed fix reaches pages within minutes.

The demo is what a merchant would build: a page (HTML, one module script, CSS, no build step,
strict CSP) and a tiny "merchant backend" route, `POST /demo/session`, that mints an end-user
token for the demo app in-process (`mint_session`, as `POST /v1/sessions` does) and hands the
page the app's publishable key and its catalog. It is unauthenticated by nature (it stands for
a shop's own logged-in session), hence off unless configured. The security headers every
response gets (nosniff, no-referrer, no framing) come from service/api/edge.py.
"""

from __future__ import annotations

import hashlib
from importlib import resources as importlib_resources
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter
from litestar.types import ControllerRouterHandler

from service.access.sessions import SessionCreate, mint_session
from service.api.decoding import decode_json
from service.api.deps import resources
from service.api.openapi import errors, request_body
from service.demo import demo_publishable_key
from service.errors import ApiError
from service.products import CatalogProduct
from service.resources import Resources
from service.settings import Settings

_STATIC = importlib_resources.files("service") / "static"


class _Asset:
    """A file shipped with the package, read once, with its strong validator."""

    def __init__(self, path: str, media_type: str) -> None:
        self.body = (_STATIC / path).read_bytes()
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def response(self, if_none_match: str | None, headers: dict[str, str]) -> Response[bytes]:
        headers = {**headers, "ETag": self.etag}
        if if_none_match is not None and self.etag in (t.strip() for t in if_none_match.split(",")):
            return Response(b"", status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


_JS = "text/javascript"  # Litestar adds "; charset=utf-8" to text types
_SDK = _Asset("sdk/tryon.js", _JS)
_SDK_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    # Unversioned URL: short freshness, then a cheap revalidation by ETag.
    "Cache-Control": "public, max-age=300",
}

IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match")]


@get("/sdk/tryon.js", include_in_schema=False)
async def sdk(if_none_match: IfNoneMatch = None) -> Response[bytes]:
    return _SDK.response(if_none_match, _SDK_HEADERS)


# --- the demo storefront -----------------------------------------------------------------------

_PAGE = _Asset("demo/index.html", "text/html")
_SCRIPT = _Asset("demo/demo.js", _JS)
_STYLE = _Asset("demo/demo.css", "text/css")
_DEMO_HEADERS = {
    # Product pictures and results come from wherever Genlook (or the emulator) serves them.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' blob: data: http: https:; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-cache",
}
# What the demo grants each visitor: enough to play, not enough to drain the account.
DEMO_TOKEN_MINUTES = 15
DEMO_TRYONS_PER_TOKEN = 5
DEMO_PRODUCTS_SHOWN = 12

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class DemoSessionIn(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    external_user_id: UserId


class DemoProductOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    id: str
    title: str
    image_url: str
    description: str | None = None


class DemoSessionOut(msgspec.Struct, frozen=True, rename="camel"):
    publishable_key: str
    token: str
    expires_at: str
    external_user_id: str
    max_try_ons: int
    products: list[DemoProductOut]


def _product_view(product: CatalogProduct) -> DemoProductOut | None:
    d = product.definition
    if d.external_id is None or not d.image_urls:
        return None
    return DemoProductOut(
        id=d.external_id,
        title=d.title or d.external_id,
        description=d.description,
        image_url=d.image_urls[0],
    )


def _demo_app(request: Request[Any, Any, Any]) -> str:
    settings: Settings = request.app.state.settings
    return settings.gateway.demo_app


@get("/", include_in_schema=False)
async def demo_page(if_none_match: IfNoneMatch = None) -> Response[bytes]:
    return _PAGE.response(if_none_match, _DEMO_HEADERS)


@get("/demo.js", include_in_schema=False)
async def demo_script(if_none_match: IfNoneMatch = None) -> Response[bytes]:
    return _SCRIPT.response(if_none_match, _DEMO_HEADERS)


@get("/demo.css", include_in_schema=False)
async def demo_style(if_none_match: IfNoneMatch = None) -> Response[bytes]:
    return _STYLE.response(if_none_match, _DEMO_HEADERS)


@post(
    "/session",
    status_code=201,
    tags=["demo"],
    responses=errors(400, 413, 503),
    dependencies=request_body(DemoSessionIn),
)
async def demo_session(
    request: Request[Any, Any, Any], res: NamedDependency[Resources]
) -> Response[DemoSessionOut]:
    """The demo's merchant backend: an end-user token for the visitor (who names themselves
    by a random id the page keeps), the demo app's publishable key and its catalog."""
    body = decode_json(await request.body(), DemoSessionIn)
    app = _demo_app(request)
    publishable_key = await demo_publishable_key(res.apps, res.redis, res.keys, app)
    if publishable_key is None:
        raise ApiError(503, "DEMO_UNAVAILABLE", f"The demo app {app!r} does not exist.")
    session = await mint_session(
        res,
        app,
        SessionCreate(
            external_user_id=body.external_user_id,
            expires_in_minutes=DEMO_TOKEN_MINUTES,
            max_try_ons=DEMO_TRYONS_PER_TOKEN,
        ),
    )
    items, _ = await res.catalog.page(app, limit=DEMO_PRODUCTS_SHOWN, after=None)
    products = [view for view in map(_product_view, items) if view is not None]
    out = DemoSessionOut(
        publishable_key=publishable_key,
        token=session.token,
        expires_at=session.expires_at,
        external_user_id=session.external_user_id,
        max_try_ons=session.max_try_ons,
        products=products,
    )
    return Response(out, status_code=201, headers={"Cache-Control": "no-store"})


def browser_routers(settings: Settings) -> list[ControllerRouterHandler]:
    """The SDK always; the demo only when `GATEWAY_DEMO_APP` names an app."""
    handlers: list[ControllerRouterHandler] = [sdk]
    if settings.gateway.demo_app:
        handlers.append(
            Router(
                path="/demo",
                route_handlers=[demo_page, demo_script, demo_style, demo_session],
                dependencies={"res": Provide(resources, sync_to_thread=False)},
            )
        )
    return handlers
