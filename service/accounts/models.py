"""Accounts as stored in Redis (msgspec JSON) and as shown to operators."""

from __future__ import annotations

import time

import msgspec

# The implicit account made of GENLOOK_API_KEY / GENLOOK_BASE_URL / GENLOOK_RATE_LIMIT: every
# app without a pool of its own uses it, as every app did before accounts existed.
DEFAULT_ACCOUNT = "default"

# Why an account is out of its pools (the upstream's own codes).
OUT_OF_CREDITS = "INSUFFICIENT_CREDITS"
KEY_REFUSED = "INVALID_API_KEY"


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator set. The key is held only as Fernet ciphertext (`sealed_key`)."""

    id: str
    base_url: str
    sealed_key: str
    # The key's first characters, to recognise it in a listing (`gk_live_…`).
    key_hint: str
    rate_limit: int
    # Which upstream account cached references are true of: service/namespacing.py's digest of
    # base URL and key, computed when the key is set so nothing decrypts it to name a cache.
    digest: str
    created_at: float = msgspec.field(default_factory=time.time)
    updated_at: float = msgspec.field(default_factory=time.time)


class AccountStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the fleet learnt of an account, shared by every process (the default one's too)."""

    disabled: bool = False
    # Set while the account is out of its pools: the code upstream refused with.
    unavailable: str | None = None
    unavailable_since: float | None = None
    balance: int | None = None
    balance_at: float | None = None

    @property
    def usable(self) -> bool:
        return not self.disabled and self.unavailable is None


class AccountOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """An account as the CLI and the ops API show it: never its key, only the hint."""

    id: str
    base_url: str
    key_hint: str
    rate_limit: int
    is_default: bool
    disabled: bool
    available: bool
    unavailable_reason: str | None = None
    unavailable_since: float | None = None
    balance: int | None = None
    balance_at: float | None = None
    created_at: float | None = None


def key_hint(api_key: str) -> str:
    return api_key[:8] + "…"


def account_view(config: AccountConfig, status: AccountStatus, *, is_default: bool) -> AccountOut:
    return AccountOut(
        id=config.id,
        base_url=config.base_url,
        key_hint=config.key_hint,
        rate_limit=config.rate_limit,
        is_default=is_default,
        disabled=status.disabled,
        available=status.usable,
        unavailable_reason=status.unavailable,
        unavailable_since=status.unavailable_since,
        balance=status.balance,
        balance_at=status.balance_at,
        created_at=None if is_default else config.created_at,
    )
