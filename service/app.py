"""`create_app(settings) -> Litestar`: the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp
from redis.asyncio import Redis

from service import logs
from service.access.keyring import KeyRing
from service.api.account import AccountController
from service.api.batches import BatchController
from service.api.browser import browser_routers
from service.api.dashboard import dashboard_router
from service.api.edge import edge
from service.api.genlook_compat import genlook_router
from service.api.health import healthz, readyz
from service.api.images import image_routes
from service.api.metrics import metrics
from service.api.openapi import COMPONENTS
from service.api.ops import OpsController, make_intake_gate
from service.api.ops_accounts import OpsAccountsController
from service.api.products import ProductController
from service.api.results import result
from service.api.sessions import SessionController
from service.api.tryons import TryOnController
from service.api.usage import OpsUsageController, UsageController
from service.api.webhooks import CallbackSecretController, WebhookEndpointController
from service.auth import Authenticator, parse_secret_keys
from service.errors import EXCEPTION_HANDLERS
from service.events import EventHub
from service.gc_tuning import tune_for_serving
from service.resources import Resources
from service.settings import Settings


def create_app(settings: Settings | None = None, *, redis: Redis | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    static_keys = parse_secret_keys(settings.gateway.secret_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        logs.configure()
        res = Resources.build(settings, redis, autopipeline=True)
        hub = EventHub(res.redis, res.keys)
        await hub.start()
        app.state.resources = res
        app.state.hub = hub
        app.state.auth = Authenticator(
            KeyRing(static_keys, res.apps, ttl=settings.gateway.key_cache_seconds),
            res.tokens,
            res.quotas,
            trusted_proxies=settings.gateway.trusted_proxies,
        )
        app.state.intake_gate = make_intake_gate(res)
        try:
            yield
        finally:
            await hub.stop()
            await res.aclose()

    app = Litestar(
        route_handlers=[
            TryOnController,
            BatchController,
            SessionController,
            WebhookEndpointController,
            CallbackSecretController,
            image_routes(settings),
            ProductController,
            result,
            AccountController,
            genlook_router,
            OpsController,
            OpsAccountsController,
            UsageController,
            OpsUsageController,
            dashboard_router,
            healthz,
            readyz,
            metrics,
            *browser_routers(settings),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="tryon-gateway",
            version="1",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin()],
            components=COMPONENTS,
        ),
        debug=False,
    )
    app.state.settings = settings
    # Around Litestar's own handler, as Litestar wraps its CORS middleware: every request
    # passes, routed or not (service/api/edge.py).
    app.asgi_handler = edge(
        app.asgi_handler, lambda: app.state.auth.ring, access_log=settings.gateway.access_log
    )
    return app


def create_asgi() -> ASGIApp:
    """What `tryon-gateway serve` runs: the app, its start-up heap out of the collector's way."""
    settings = Settings.from_env()
    app = create_app(settings)
    tune_for_serving(settings.gateway.gc_threshold)
    return app
