"""`GET /v1/account/credits` and `DELETE /v1/customers/{externalUserId}` (GDPR erase)."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from service.api.deps import resources
from service.auth import Principal, require_secret
from service.errors import ApiError
from service.genlook.errors import GenlookError
from service.resources import Resources
from service.tryons.erase import erase_customer


class CreditsOut(msgspec.Struct, frozen=True, rename="camel"):
    credit_balance: int
    as_of: float


class AccountController(Controller):
    tags = ["account"]
    dependencies = {
        "principal": Provide(require_secret, sync_to_thread=False),
        "res": Provide(resources, sync_to_thread=False),
    }

    @get("/v1/account/credits")
    async def credits(
        self, principal: NamedDependency[Principal], res: NamedDependency[Resources]
    ) -> CreditsOut:
        """The Genlook account's credit balance (shared by every app of this gateway)."""
        try:
            balance, as_of = await res.credits.read()
        except GenlookError as exc:
            raise ApiError(502, "UPSTREAM_UNAVAILABLE", "Genlook did not answer.") from exc
        return CreditsOut(credit_balance=balance, as_of=as_of)

    @delete("/v1/customers/{external_user_id:str}")
    async def erase(
        self,
        external_user_id: FromPath[str],
        principal: NamedDependency[Principal],
        res: NamedDependency[Resources],
    ) -> None:
        """Erase an end user upstream and every local trace (try-ons, photos). Idempotent."""
        try:
            await erase_customer(res, principal.app, external_user_id)
        except GenlookError as exc:
            raise ApiError(
                502, "UPSTREAM_UNAVAILABLE", "Genlook did not confirm the erase; retry."
            ) from exc
