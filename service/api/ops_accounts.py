"""`/ops/api/accounts` and `/ops/api/apps/{app}/accounts`: upstream accounts and apps' pools,
for admin tokens only (service/api/ops.py). A key goes in (create, update) and never comes out:
answers show its first characters. Codes: ACCOUNT_NOT_FOUND, ACCOUNT_EXISTS,
ACCOUNT_READ_ONLY (the default account is made of settings), MASTER_KEY_MISSING,
VALIDATION_FAILED. See docs/accounts.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.accounts import admin
from service.accounts.models import AccountOut
from service.api.decoding import decode_json
from service.api.openapi import ADMIN_ONLY, AUTHENTICATED, errors, request_body
from service.api.ops import OPS_CTX, OpsCtx
from service.domain_errors import validation_failed

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Key = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
_Limit = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
_Url = Annotated[str, msgspec.Meta(max_length=2000)]


class AccountIn(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    id: _Id
    api_key: _Key
    base_url: _Url | None = None
    rate_limit: _Limit | None = None


class AccountPatch(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    api_key: _Key | None = None
    base_url: _Url | None = None
    rate_limit: _Limit | None = None
    disabled: bool | None = None


class PoolIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    accounts: Annotated[list[_Id], msgspec.Meta(max_length=32)]


class PoolOut(msgspec.Struct, frozen=True):
    app: str
    accounts: list[str]


class OpsAccountsController(Controller):
    path = "/ops/api"
    tags = ["ops"]
    dependencies = OPS_CTX
    security = ADMIN_ONLY

    @get("/accounts", responses=errors(*AUTHENTICATED))
    async def list_accounts(self, ctx: NamedDependency[OpsCtx]) -> list[AccountOut]:
        """Every account (the default first): state, reason when out of its pools, last
        balance read, key hint. Never a key."""
        return await admin.list_accounts(ctx.res.accounts.registry)

    @post(
        "/accounts",
        status_code=201,
        responses=errors(*AUTHENTICATED, 409, 413),
        dependencies=request_body(AccountIn),
    )
    async def create_account(
        self, request: Request[Any, Any, Any], ctx: NamedDependency[OpsCtx]
    ) -> AccountOut:
        """A new account; its key is encrypted with GATEWAY_MASTER_KEY and never shown again."""
        body = decode_json(await request.body(), AccountIn)
        return await admin.create(
            ctx.res.accounts.registry,
            body.id,
            body.api_key,
            base_url=body.base_url,
            rate_limit=body.rate_limit,
        )

    @get("/accounts/{account_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def get_account(
        self, account_id: FromPath[str], ctx: NamedDependency[OpsCtx]
    ) -> AccountOut:
        return await admin.view(ctx.res.accounts.registry, account_id)

    @patch(
        "/accounts/{account_id:str}",
        responses=errors(*AUTHENTICATED, 404, 409, 413),
        dependencies=request_body(AccountPatch),
    )
    async def update_account(
        self,
        request: Request[Any, Any, Any],
        account_id: FromPath[str],
        ctx: NamedDependency[OpsCtx],
    ) -> AccountOut:
        """Change the URL, rate limit or key (a new key puts the account back in its pools);
        `disabled` takes it out of every pool, or puts it back."""
        body = decode_json(await request.body(), AccountPatch)
        return await admin.update(
            ctx.res.accounts.registry,
            account_id,
            api_key=body.api_key,
            base_url=body.base_url,
            rate_limit=body.rate_limit,
            disabled=body.disabled,
        )

    @delete("/accounts/{account_id:str}", responses=errors(*AUTHENTICATED, 404, 409))
    async def delete_account(self, account_id: FromPath[str], ctx: NamedDependency[OpsCtx]) -> None:
        """The account leaves every pool; try-ons already sent to it fail their next read."""
        await ctx.res.accounts.registry.delete(account_id)

    @get("/apps/{app:str}/accounts", responses=errors(*AUTHENTICATED))
    async def get_pool(self, app: FromPath[str], ctx: NamedDependency[OpsCtx]) -> PoolOut:
        """The app's ordered pool (`["default"]` unless one was set)."""
        return PoolOut(app=app, accounts=await ctx.res.accounts.registry.pool(app))

    @put(
        "/apps/{app:str}/accounts",
        responses=errors(*AUTHENTICATED, 404, 413),
        dependencies=request_body(PoolIn),
    )
    async def set_pool(
        self, request: Request[Any, Any, Any], app: FromPath[str], ctx: NamedDependency[OpsCtx]
    ) -> PoolOut:
        """Set the app's pool, first preferred; `[]` puts it back on the default account."""
        body = decode_json(await request.body(), PoolIn)
        if len(app) > 64:
            raise validation_failed("app", "at most 64 characters")
        accounts = await ctx.res.accounts.registry.set_pool(app, body.accounts)
        return PoolOut(app=app, accounts=accounts)
