"""The one way this project builds a Genlook client: fleet budget and timeouts from settings."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar

import httpx
from redis.exceptions import RedisError

from service.budget import BudgetShape, UpstreamBudget
from service.genlook.client import GenlookClient, Priority
from service.lanes import Claim
from service.metrics import MetricsWriter, status_class
from service.settings import GenlookSettings

log = logging.getLogger("service.upstream")

# When a 429 carries no Retry-After, stop the fleet for this share of the rate window.
_DEFAULT_PAUSE_SHARE = 0.25


# Set by `BudgetHooks.reserved`: the next attempt in this task has its cell already.
_prepaid: ContextVar[bool] = ContextVar("budget_prepaid", default=False)


class BudgetHooks:
    """Client hooks: take a cell of the shared budget before every attempt; pause on 429."""

    def __init__(self, budget: UpstreamBudget, window: float, metrics: MetricsWriter) -> None:
        self._budget = budget
        self._window = window
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def reserved(self, priority: Priority, claim: Claim | None = None) -> AsyncIterator[None]:
        """Take the cell for the next call now, so that whatever the caller records between
        this and the call (the create marker) is not followed by an unbounded budget wait.
        `claim`: the lane and app the cell is asked for (docs/lanes.md)."""
        await self._budget.acquire(priority, claim)
        token = _prepaid.set(True)
        try:
            yield
        finally:
            _prepaid.reset(token)

    @contextlib.asynccontextmanager
    async def spare(self) -> AsyncIterator[bool]:
        """A spare cell for the next call, if one is free now and no start waits for it
        (service/budget.py); yields whether it was granted. Without one, make no call."""
        granted = await self._budget.try_acquire_spare()
        token = _prepaid.set(granted)
        try:
            yield granted
        finally:
            _prepaid.reset(token)

    async def before_request(self, endpoint: str, priority: Priority) -> None:
        if _prepaid.get():
            _prepaid.set(False)
            return
        waited = await self._budget.acquire(priority)
        if waited > 1.0:
            log.info("upstream budget: %s waited %.1fs", endpoint, waited)

    async def after_response(self, endpoint: str, status: int | None, elapsed: float) -> None:
        # Raising here would discard the answer (a create's: a credit spent, its id lost).
        try:
            await self._metrics.add(
                "upstream_requests", endpoint=endpoint, status=status_class(status)
            )
        except (RedisError, OSError) as exc:
            log.warning("upstream request not counted: %s", type(exc).__name__)

    async def on_rate_limited(self, endpoint: str, retry_after: float | None) -> None:
        pause = retry_after if retry_after is not None else self._window * _DEFAULT_PAUSE_SHARE
        log.warning("upstream 429 on %s: fleet paused for %.2fs", endpoint, pause)
        await self._metrics.add("upstream_rate_limited")
        await self._budget.pause(pause)


def budget_shape(settings: GenlookSettings) -> BudgetShape:
    return BudgetShape.for_limit(settings.rate_limit, settings.rate_window, settings.rate_margin)


def make_client(settings: GenlookSettings, hooks: BudgetHooks) -> GenlookClient:
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout,
    )
    return GenlookClient(
        settings.resolved_api_key,
        settings.resolved_base_url,
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        hooks=hooks,
        sync_timeout=settings.sync_timeout,
    )


class CreditsReader:
    """The balance, read at most once per `ttl`: cheap for Genlook, not for our rate budget."""

    def __init__(self, client: GenlookClient, ttl: float = 5.0) -> None:
        self._client = client
        self._ttl = ttl
        self._cached: tuple[int, float] | None = None

    async def read(self) -> tuple[int, float]:
        now = time.time()
        if self._cached is None or now - self._cached[1] >= self._ttl:
            self._cached = ((await self._client.get_credits()).credit_balance, now)
        return self._cached
