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
        responses=documented(CreditsView, 200, "The balance of the app's upstream accounts.")
        | errors(401, 429, 502, 503),
    )
    async def credits(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """The credits the caller's app can spend: the balances of the usable accounts of its
        pool (the default account alone unless an operator gave it one), read now. The
        gateway refuses try-ons by it (402 INSUFFICIENT_CREDITS)."""
        ctx = await genlook_caller(request)
        read = await ctx.surface.res.accounts.read_pool_balance(ctx.principal.app)
        if read is None:
            raise ApiError(502, "UPSTREAM_UNAVAILABLE", "Genlook did not answer.")
        balance, _ = read
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
