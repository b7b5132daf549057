"""`GET /v1/account/credits` and `DELETE /v1/customers/{externalUserId}` (GDPR erase)."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.api.deps import CTX, Ctx
from service.api.openapi import AUTHENTICATED, SECRET_ONLY, errors
from service.errors import ApiError
from service.genlook.errors import GenlookError
from service.tryons.erase import erase_customer
from service.tryons.intake import check_external_user_id


class CreditsOut(msgspec.Struct, frozen=True, rename="camel"):
    credit_balance: int
    as_of: float


class AccountController(Controller):
    tags = ["account"]
    dependencies = CTX
    security = SECRET_ONLY

    @get("/v1/account/credits", responses=errors(*AUTHENTICATED, 502))
    async def credits(self, ctx: NamedDependency[Ctx]) -> CreditsOut:
        """The credits the caller's app can spend: the balances of the usable accounts of its
        pool (the default account alone unless an operator gave it one), read now; `asOf` is
        the oldest read's time."""
        read = await ctx.res.accounts.read_pool_balance(ctx.principal.app)
        if read is None:
            raise ApiError(502, "UPSTREAM_UNAVAILABLE", "Genlook did not answer.")
        balance, as_of = read
        return CreditsOut(credit_balance=balance, as_of=as_of)

    @delete("/v1/customers/{external_user_id:str}", responses=errors(*AUTHENTICATED, 502))
    async def erase(
        self,
        external_user_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> None:
        """Erase an end user upstream and every local trace (try-ons, photos). Idempotent."""
        principal, res = ctx.principal, ctx.res
        check_external_user_id(external_user_id)
        try:
            await erase_customer(res, principal.app, external_user_id)
        except GenlookError as exc:
            raise ApiError(
                502, "UPSTREAM_UNAVAILABLE", "Genlook did not confirm the erase; retry."
            ) from exc
