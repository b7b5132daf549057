"""What the CLI (`tryon-gateway accounts ...`) and the ops API (`/ops/api/accounts`) do with
accounts: one function per operation, each returning what both show (never a key)."""

from __future__ import annotations

from service.accounts.models import DEFAULT_ACCOUNT, AccountOut, account_view
from service.accounts.registry import AccountRegistry


async def view(registry: AccountRegistry, account_id: str) -> AccountOut:
    config = await registry.get(account_id)
    status = await registry.status(account_id)
    return account_view(config, status, is_default=account_id == DEFAULT_ACCOUNT)


async def list_accounts(registry: AccountRegistry) -> list[AccountOut]:
    configs = await registry.all()
    statuses = await registry.statuses([c.id for c in configs])
    return [
        account_view(c, s, is_default=c.id == DEFAULT_ACCOUNT)
        for c, s in zip(configs, statuses, strict=True)
    ]


async def create(
    registry: AccountRegistry,
    account_id: str,
    api_key: str,
    *,
    base_url: str | None = None,
    rate_limit: int | None = None,
) -> AccountOut:
    await registry.create(account_id, api_key, base_url=base_url, rate_limit=rate_limit)
    return await view(registry, account_id)


async def update(
    registry: AccountRegistry,
    account_id: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    rate_limit: int | None = None,
    disabled: bool | None = None,
) -> AccountOut:
    if api_key is not None or base_url is not None or rate_limit is not None:
        await registry.update(account_id, api_key=api_key, base_url=base_url, rate_limit=rate_limit)
    if disabled is not None:
        await registry.set_disabled(account_id, disabled)
    return await view(registry, account_id)
