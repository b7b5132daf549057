"""`POST /v1/sessions`: a merchant's backend mints a short-lived end-user token for a browser."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency

from service.access.sessions import SessionCreate, SessionOut, mint_session
from service.api.decoding import decode_json
from service.api.deps import CTX, Ctx
from service.api.openapi import AUTHENTICATED, SECRET_ONLY, errors, request_body


class SessionController(Controller):
    path = "/v1/sessions"
    tags = ["browser access"]
    dependencies = CTX
    security = SECRET_ONLY

    @post(
        "/",
        status_code=201,
        responses=errors(*AUTHENTICATED, 404, 413),
        dependencies=request_body(SessionCreate),
    )
    async def create(
        self, request: Request[Any, Any, Any], ctx: NamedDependency[Ctx]
    ) -> SessionOut:
        """Mint an end-user token (secret key only): one end user, minutes of life, a number
        of try-ons and optionally which products. Give it to that user's browser with the
        app's publishable key."""
        body = decode_json(await request.body(), SessionCreate)
        return await mint_session(ctx.res, ctx.principal.app, body)
