"""One client and one rate budget per upstream account, and the choice of account per try-on.

Failover rules (docs/accounts.md): an account answering 402 (out of credits) or 401 (its key
refused) is taken out of its pools, fleet-wide, with that code as the reason; try-ons not yet
created upstream go on through the next usable account of their app's pool. It comes back when
its balance read shows credits again (the sweeper's refresh, `refresh_balance`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from service.accounts.models import (
    DEFAULT_ACCOUNT,
    KEY_REFUSED,
    OUT_OF_CREDITS,
    AccountConfig,
    AccountStatus,
)
from service.accounts.registry import AccountRegistry, upstream_settings
from service.budget import UpstreamBudget
from service.domain_errors import Unavailable
from service.genlook import errors as gl
from service.genlook.client import GenlookClient
from service.keys import Keys
from service.metrics import MetricsWriter
from service.settings import GenlookSettings
from service.upstream import BudgetHooks, CreditsReader, budget_shape, make_client

log = logging.getLogger("service.accounts")

# A backlog entry older than this was left by a worker that died mid-attempt (an attempt lasts
# at most WORKER_JOB_TIMEOUT, 180 s by default): it no longer counts.
_BACKLOG_STALE = 300.0


class NoAccount(Unavailable):
    """Every account of the app's pool is disabled by an operator."""

    def __init__(self, app: str) -> None:
        super().__init__(
            "NO_UPSTREAM_ACCOUNT", f"Every upstream account of app {app!r} is disabled."
        )


@dataclass(frozen=True, slots=True)
class Upstream:
    """One account as a worker uses it."""

    id: str
    # What the product and photo caches are keyed by (service/namespacing.py).
    digest: str
    client: GenlookClient
    budget: UpstreamBudget
    hooks: BudgetHooks


def refusal_reason(exc: gl.GenlookError) -> str | None:
    """The reason an answer takes its account out of the pool, if it does: both prove the
    request did nothing upstream (no generation, no credit)."""
    if isinstance(exc, gl.InsufficientCredits):
        return OUT_OF_CREDITS
    if isinstance(exc, gl.AuthenticationError):
        return KEY_REFUSED
    return None


class AccountDirectory:
    def __init__(
        self,
        registry: AccountRegistry,
        *,
        redis: Redis,
        keys: Keys,
        genlook: GenlookSettings,
        metrics: MetricsWriter,
        default: Upstream,
        default_credits: CreditsReader,
    ) -> None:
        self.registry = registry
        self._redis = redis
        self._keys = keys
        self._genlook = genlook
        self._metrics = metrics
        self._default = default
        self._default_credits = default_credits
        # Built on first use; rebuilt when the account's config changed (a new key or limit).
        self._built: dict[str, tuple[AccountConfig, Upstream]] = {}
        self._retired: list[GenlookClient] = []

    async def upstream(self, account_id: str) -> Upstream:
        """UnknownAccount if it was deleted."""
        if account_id == DEFAULT_ACCOUNT:
            return self._default
        config = await self.registry.get(account_id)
        built = self._built.get(account_id)
        if built is not None and built[0] == config:
            return built[1]
        if built is not None:
            # Requests may still be in flight on it: closed with the process.
            self._retired.append(built[1].client)
        settings = upstream_settings(self._genlook, config, self.registry.api_key(config))
        budget = UpstreamBudget(self._redis, self._keys, budget_shape(settings), account_id)
        hooks = BudgetHooks(budget, settings.rate_window, self._metrics)
        up = Upstream(
            id=account_id,
            digest=config.digest,
            client=make_client(settings, hooks),
            budget=budget,
            hooks=hooks,
        )
        self._built[account_id] = (config, up)
        return up

    async def choose(self, app: str) -> Upstream:
        """The account of the app's pool a try-on goes through: the first usable one, unless it
        is behind (`_spread`). When none is usable, the first one not disabled: upstream's own
        answer then decides (an account topped up meanwhile works; otherwise the try-on fails
        with upstream's code, as with a single account)."""
        pool = await self.registry.pool(app)
        statuses = await self.registry.statuses(pool)
        usable = [a for a, s in zip(pool, statuses, strict=True) if s.usable]
        if len(usable) > 1:
            return await self._spread(usable)
        if usable:
            return await self.upstream(usable[0])
        for account_id, status in zip(pool, statuses, strict=True):
            if not status.disabled:
                return await self.upstream(account_id)
        raise NoAccount(app)

    async def _spread(self, usable: list[str]) -> Upstream:
        """The first account whose backlog its budget sends within a tenth of a rate window;
        when every one is further behind, the least behind for its rate. So a pool prefers its
        first account and spills over only what that account's rate cannot carry: two accounts
        carry twice the try-ons per window."""
        ups = [await self.upstream(a) for a in usable]
        stale = time.time() - _BACKLOG_STALE
        async with self._redis.pipeline(transaction=False) as pipe:
            for up in ups:
                pipe.zremrangebyscore(self._keys.account_backlog(up.id), "-inf", stale)
                pipe.zcard(self._keys.account_backlog(up.id))
            answers = await pipe.execute()
        behind = []
        for up, waiting in zip(ups, answers[1::2], strict=True):
            per_window = self._genlook.rate_window * 1000.0 / up.budget.shape.interval_ms
            if waiting < max(1.0, per_window / 10):
                return up
            behind.append((waiting / per_window, up))
        return min(behind, key=lambda b: b[0])[1]

    async def sending(self, account_id: str, tryon_id: str) -> None:
        """A job attempt is sending this try-on through the account (counts in its backlog)."""
        await self._redis.zadd(self._keys.account_backlog(account_id), {tryon_id: time.time()})

    async def sent(self, account_id: str, tryon_id: str) -> None:
        """That attempt is over (sent, failed, or handed over): out of the backlog."""
        await self._redis.zrem(self._keys.account_backlog(account_id), tryon_id)

    async def usable(self, account_id: str) -> bool:
        return (await self.registry.status(account_id)).usable

    async def has_usable(self, app: str) -> bool:
        pool = await self.registry.pool(app)
        return any(s.usable for s in await self.registry.statuses(pool))

    async def take_out(self, account_id: str, reason: str) -> None:
        def out(s: AccountStatus) -> AccountStatus:
            if s.unavailable == reason:
                return s
            return msgspec.structs.replace(s, unavailable=reason, unavailable_since=time.time())

        status = await self.registry.set_status(account_id, out)
        log.warning("upstream account %s out of its pools: %s", account_id, status.unavailable)
        await self._metrics.add("upstream_account_failovers", reason=reason)

    async def refresh_balance(self, account_id: str, *, recent: bool = False) -> int | None:
        """Read the account's balance; an account out of credits with credits again, or whose
        key works again, goes back into its pools. Returns the balance (None: not read).
        `recent`: the default account's may be a read at most 5 s old (its reader's)."""
        try:
            balance, read_at = await self._read_balance(account_id, recent)
        except gl.AuthenticationError:
            await self.take_out(account_id, KEY_REFUSED)
            return None
        except gl.GenlookError as exc:
            log.info("balance of account %s not read: %s", account_id, type(exc).__name__)
            return None

        def seen(s: AccountStatus) -> AccountStatus:
            back = s.unavailable == KEY_REFUSED or (s.unavailable == OUT_OF_CREDITS and balance > 0)
            if back:
                log.info("upstream account %s back in its pools (balance %d)", account_id, balance)
            return msgspec.structs.replace(
                s,
                balance=balance,
                balance_at=read_at,
                unavailable=None if back else s.unavailable,
                unavailable_since=None if back else s.unavailable_since,
            )

        await self.registry.set_status(account_id, seen)
        if account_id == DEFAULT_ACCOUNT:
            # The default account's balance as /metrics and the one-account gate have always
            # read it (tests and operators may set this key directly).
            await self._redis.set(self._keys.credits_balance, balance)
        return balance

    async def _read_balance(self, account_id: str, recent: bool) -> tuple[int, float]:
        """The balance upstream and when it was read. The credits endpoints, called freely,
        read the default account's through its reader (at most once per 5 s), as before
        accounts existed."""
        if recent and account_id == DEFAULT_ACCOUNT:
            return await self._default_credits.read()
        up = await self.upstream(account_id)
        return (await up.client.get_credits()).credit_balance, time.time()

    async def pool_balance(self, app: str) -> int | None:
        """The credits the app's pool can spend, by the last balances read: the sum over its
        usable accounts (one taken out of the pool for want of credits or a refused key counts
        for nothing). 0 when none is usable; None when a usable account's balance was never
        read, or every account is disabled (the intake then answers NO_UPSTREAM_ACCOUNT)."""
        pool = await self.registry.pool(app)
        statuses = await self.registry.statuses(pool)
        if all(s.disabled for s in statuses):
            return None
        total = 0
        for account_id, status in zip(pool, statuses, strict=True):
            if not status.usable:
                continue
            balance = status.balance
            if account_id == DEFAULT_ACCOUNT:
                raw: bytes | None = await self._redis.get(self._keys.credits_balance)
                balance = None if raw is None else int(raw)
            if balance is None:
                return None
            total += balance
        return total

    async def read_pool_balance(self, app: str) -> tuple[int, float] | None:
        """Read the balance of every enabled account of the app's pool now (an account with
        credits again goes back into the pool), then `pool_balance` and the oldest read's time.
        None when an account's balance could not be read."""
        pool = await self.registry.pool(app)
        enabled = [
            a
            for a, s in zip(pool, await self.registry.statuses(pool), strict=True)
            if not s.disabled
        ]
        for account_id in enabled:
            if await self.refresh_balance(account_id, recent=True) is None:
                return None
        read = [s.balance_at for s in await self.registry.statuses(enabled) if s.balance_at]
        balance = await self.pool_balance(app)
        return None if balance is None else (balance, min(read, default=time.time()))

    async def aclose(self) -> None:
        for _, up in self._built.values():
            await up.client.aclose()
        for client in self._retired:
            await client.aclose()
