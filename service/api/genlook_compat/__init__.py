"""Genlook's v1 API at `/tryon/v1` (docs/genlook-compat.md): an integration written for Genlook
switches to the gateway by changing its base URL and key. Thin routes over the gateway's own
intake, photos, catalog and result links (service/genlook_compat/), answering in Genlook's
codes (errors.py)."""

from __future__ import annotations

from litestar import Router

from service.api.genlook_compat.account import GenlookAccountController
from service.api.genlook_compat.errors import GENLOOK_ERRORS
from service.api.genlook_compat.images import GenlookImageController
from service.api.genlook_compat.products import GenlookProductController
from service.api.genlook_compat.tryons import GenlookTryOnController

genlook_router = Router(
    path="/tryon/v1",
    route_handlers=[
        GenlookImageController,
        GenlookTryOnController,
        GenlookProductController,
        GenlookAccountController,
    ],
    exception_handlers=GENLOOK_ERRORS,
)
