"""Accounts, their status and the apps' pools, in Redis.

Stored accounts live in one hash (the key as Fernet ciphertext only); the default account is
made of the settings (GENLOOK_API_KEY, ...) and never stored, but its status is, like every
other's, so the whole fleet sees it taken out of its pools and back. An app with no pool of
its own sends everything through the default account, as before accounts existed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec
from redis.asyncio import Redis

from service.accounts.crypto import KeyBox
from service.accounts.models import DEFAULT_ACCOUNT, AccountConfig, AccountStatus, key_hint
from service.domain_errors import Conflict, NotFound, validation_failed
from service.keys import Keys
from service.namespacing import InvalidAppId, check_app_id, part, upstream_account
from service.settings import GenlookSettings


class UnknownAccount(NotFound):
    def __init__(self, account_id: str) -> None:
        super().__init__("ACCOUNT_NOT_FOUND", f"No upstream account {account_id!r}.")
        self.account_id = account_id


class AccountExists(Conflict):
    def __init__(self, account_id: str) -> None:
        super().__init__("ACCOUNT_EXISTS", f"An upstream account {account_id!r} exists already.")


class DefaultAccountFixed(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "ACCOUNT_READ_ONLY",
            "The default account is made of GENLOOK_API_KEY, GENLOOK_BASE_URL and "
            "GENLOOK_RATE_LIMIT: change those settings; it may only be disabled or enabled here.",
        )


def upstream_settings(
    genlook: GenlookSettings, config: AccountConfig, api_key: str
) -> GenlookSettings:
    """The client settings of one account: the gateway's timeouts, the account's own upstream."""
    return msgspec.structs.replace(
        genlook, api_key=api_key, base_url=config.base_url, rate_limit=config.rate_limit
    )


def _check_id(account_id: str) -> str:
    try:
        return check_app_id(account_id)
    except InvalidAppId:
        raise validation_failed(
            "id", "letters, digits, '.', '_' and '-', starting with a letter or digit, 1-64 long"
        ) from None


def _check_rate(rate_limit: int) -> int:
    if not 1 <= rate_limit <= 100_000:
        raise validation_failed("rateLimit", "requests per rate window: 1 to 100000")
    return rate_limit


def _check_key(api_key: str) -> str:
    if not api_key.strip() or len(api_key) > 512 or any(c.isspace() for c in api_key):
        raise validation_failed("apiKey", "a Genlook key: 1-512 characters, no spaces")
    return api_key


def _check_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    if not url.startswith(("https://", "http://")) or len(url) > 2000:
        raise validation_failed("baseUrl", "an http(s) URL ending in /tryon/v1")
    return url


class AccountRegistry:
    _config_enc = msgspec.json.Encoder()
    _config_dec = msgspec.json.Decoder(AccountConfig)
    _status_dec = msgspec.json.Decoder(AccountStatus)
    _pool_dec = msgspec.json.Decoder(list[str])

    def __init__(self, redis: Redis, keys: Keys, genlook: GenlookSettings, box: KeyBox) -> None:
        self._redis = redis
        self._keys = keys
        self._genlook = genlook
        self._box = box
        self.default = AccountConfig(
            id=DEFAULT_ACCOUNT,
            base_url=genlook.resolved_base_url,
            sealed_key="",
            key_hint=key_hint(genlook.resolved_api_key),
            rate_limit=genlook.rate_limit,
            # Equal to what the caches were keyed by before accounts existed: nothing moves.
            digest=upstream_account(genlook),
            created_at=0.0,
        )

    async def _put(self, key: str, field: str, value: object) -> None:
        await self._redis.hset(key, field, msgspec.json.encode(value).decode())  # type: ignore[misc]

    async def _get(self, key: str, field: str) -> bytes | None:
        raw: bytes | None = await self._redis.hget(key, field)  # type: ignore[misc]
        return raw

    # --- accounts -----------------------------------------------------------------------------
    def _sealed(
        self,
        account_id: str,
        api_key: str,
        base_url: str,
        rate_limit: int,
        created_at: float | None = None,
    ) -> AccountConfig:
        now = time.time()
        probe = GenlookSettings(api_key=api_key, base_url=base_url)
        return AccountConfig(
            id=account_id,
            base_url=probe.resolved_base_url,
            sealed_key=self._box.seal(api_key),
            key_hint=key_hint(api_key),
            rate_limit=rate_limit,
            digest=upstream_account(probe),
            created_at=now if created_at is None else created_at,
            updated_at=now,
        )

    async def create(
        self,
        account_id: str,
        api_key: str,
        *,
        base_url: str | None = None,
        rate_limit: int | None = None,
    ) -> AccountConfig:
        if _check_id(account_id) == DEFAULT_ACCOUNT:
            raise AccountExists(account_id)
        config = self._sealed(
            account_id,
            _check_key(api_key),
            _check_url(base_url or self._genlook.resolved_base_url),
            _check_rate(rate_limit if rate_limit is not None else self._genlook.rate_limit),
        )
        sealed = self._config_enc.encode(config).decode()
        if not await self._redis.hsetnx(self._keys.accounts, account_id, sealed):  # type: ignore[misc]
            raise AccountExists(account_id)
        return config

    async def update(
        self,
        account_id: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        rate_limit: int | None = None,
    ) -> AccountConfig:
        if account_id == DEFAULT_ACCOUNT:
            raise DefaultAccountFixed()
        old = await self.get(account_id)
        config = self._sealed(
            account_id,
            _check_key(api_key) if api_key is not None else self._box.open(old.sealed_key),
            _check_url(base_url) if base_url is not None else old.base_url,
            _check_rate(rate_limit) if rate_limit is not None else old.rate_limit,
            created_at=old.created_at,
        )
        await self._put(self._keys.accounts, account_id, config)
        if api_key is not None:
            # A new key is a new chance: whatever the old one was refused for is moot.
            await self.set_status(
                account_id,
                lambda s: msgspec.structs.replace(
                    s, unavailable=None, unavailable_since=None, balance=None, balance_at=None
                ),
            )
        return config

    async def delete(self, account_id: str) -> None:
        """The account leaves every pool it was in; try-ons already created on it fail their
        next read of it (docs/accounts.md)."""
        if account_id == DEFAULT_ACCOUNT:
            raise DefaultAccountFixed()
        await self.get(account_id)
        pools = await self.pools()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.accounts, account_id)
            pipe.hdel(self._keys.account_status, account_id)
            for app, pool in pools.items():
                if account_id in pool:
                    rest = [a for a in pool if a != account_id]
                    if rest:
                        pipe.hset(self._keys.account_pools, app, msgspec.json.encode(rest).decode())
                    else:
                        pipe.hdel(self._keys.account_pools, app)
            await pipe.execute()

    async def get(self, account_id: str) -> AccountConfig:
        if account_id == DEFAULT_ACCOUNT:
            return self.default
        raw = await self._get(self._keys.accounts, account_id)
        if raw is None:
            raise UnknownAccount(account_id)
        return self._config_dec.decode(raw)

    async def all(self) -> list[AccountConfig]:
        """Every account, the default first, then by id."""
        raw: dict[bytes, bytes] = await self._redis.hgetall(self._keys.accounts)  # type: ignore[misc]
        stored = sorted((self._config_dec.decode(v) for v in raw.values()), key=lambda c: c.id)
        return [self.default, *stored]

    def api_key(self, config: AccountConfig) -> str:
        """The clear key, for the client only: never returned by an API nor logged."""
        if config.id == DEFAULT_ACCOUNT:
            return self._genlook.resolved_api_key
        return self._box.open(config.sealed_key)

    async def rotate_master_key(self) -> int:
        """Every stored key encrypted again with the first master key; returns how many."""
        count = 0
        for config in (await self.all())[1:]:
            resealed = msgspec.structs.replace(
                config, sealed_key=self._box.reseal(config.sealed_key)
            )
            await self._put(self._keys.accounts, config.id, resealed)
            count += 1
        return count

    # --- status -------------------------------------------------------------------------------
    async def status(self, account_id: str) -> AccountStatus:
        raw = await self._get(self._keys.account_status, account_id)
        return AccountStatus() if raw is None else self._status_dec.decode(raw)

    async def statuses(self, account_ids: Sequence[str]) -> list[AccountStatus]:
        if not account_ids:
            return []
        raw = await self._redis.hmget(self._keys.account_status, list(account_ids))  # type: ignore[misc]
        return [AccountStatus() if r is None else self._status_dec.decode(r) for r in raw]

    async def set_status(
        self, account_id: str, change: Callable[[AccountStatus], AccountStatus]
    ) -> AccountStatus:
        """Read, change, write. Two processes changing one status at once both write what they
        saw upstream; the later one wins, and the next answer or balance read corrects it."""
        status = change(await self.status(account_id))
        await self._put(self._keys.account_status, account_id, status)
        return status

    async def set_disabled(self, account_id: str, disabled: bool) -> AccountStatus:
        await self.get(account_id)
        return await self.set_status(
            account_id, lambda s: msgspec.structs.replace(s, disabled=disabled)
        )

    # --- pools --------------------------------------------------------------------------------
    async def pool(self, app: str) -> list[str]:
        raw = await self._get(self._keys.account_pools, part(app))
        return [DEFAULT_ACCOUNT] if raw is None else self._pool_dec.decode(raw)

    async def pools(self) -> dict[str, list[str]]:
        raw: dict[bytes, bytes] = await self._redis.hgetall(self._keys.account_pools)  # type: ignore[misc]
        return {k.decode(): self._pool_dec.decode(v) for k, v in raw.items()}

    async def set_pool(self, app: str, account_ids: Sequence[str]) -> list[str]:
        """The app's ordered pool; an empty one puts the app back on the default account."""
        pool = list(account_ids)
        if len(set(pool)) != len(pool):
            raise validation_failed("accounts", "an account appears twice")
        for account_id in pool:
            await self.get(account_id)
        if pool:
            await self._put(self._keys.account_pools, part(app), pool)
        else:
            await self._redis.hdel(self._keys.account_pools, part(app))  # type: ignore[misc]
        return pool or [DEFAULT_ACCOUNT]

    # --- where an app's users live upstream ---------------------------------------------------
    async def note_used(self, app: str, account_id: str) -> None:
        await self._redis.sadd(self._keys.app_accounts(app), account_id)  # type: ignore[misc]

    async def used_by(self, app: str) -> list[str]:
        """Every account the app sent photos or try-ons to, and its pool's."""
        members: set[bytes] = await self._redis.smembers(self._keys.app_accounts(app))  # type: ignore[misc]
        used = {m.decode() for m in members} | set(await self.pool(app))
        return sorted(used)
