"""`GET /account/credits` and `DELETE /customers/{externalUserId}`, as Genlook answers them."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from service.api.genlook_compat.context import genlook_caller
from service.api.genlook_compat.openapi import GENLOOK_KEY, errors
from service.api.json_answer import documented, json_answer
from service.errors import ApiError
from service.genlook.errors import GenlookError
from service.genlook_compat.views import CreditsView
from service.tryons.erase import erase_customer
from service.tryons.intake import check_external_user_id


class GenlookAccountController(Controller):
    tags = ["genlook-compat"]
    security = GENLOOK_KEY

    @get(
        "/account/credits",
        responses=documented(CreditsView, 200, "The Genlook account's balance.")
        | errors(401, 429, 502, 503),
    )
    async def credits(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """The balance of the gateway's Genlook account (shared by its apps). The gateway
        keeps it as the balance it refuses try-ons by (402 INSUFFICIENT_CREDITS)."""
        ctx = await genlook_caller(request)
        s = ctx.surface
        try:
            balance, _ = await s.res.credits.read()
        except GenlookError as exc:
            raise ApiError(502, "UPSTREAM_UNAVAILABLE", "Genlook did not answer.") from exc
        await s.tryons.remember_balance(balance)
        return json_answer(CreditsView(credit_balance=balance))

    @delete(
        "/customers/{external_user_id:str}",
        status_code=204,
        responses=errors(400, 401, 429, 502, 503),
    )
    async def erase(self, request: Request[Any, Any, Any], external_user_id: FromPath[str]) -> None:
        """Erase an end user: upstream, then their try-ons, photos and results here. 204 even
        when nothing matched."""
        ctx = await genlook_caller(request)
        check_external_user_id(external_user_id)
        try:
            await erase_customer(ctx.surface.res, ctx.principal.app, external_user_id)
        except GenlookError as exc:
            raise ApiError(
                502, "UPSTREAM_UNAVAILABLE", "Genlook did not confirm the erase; retry."
            ) from exc
