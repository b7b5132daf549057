"""The fleet-wide upstream rate budget: one GCRA bucket in Redis per upstream account, shared by
every process.

Genlook allows N requests per sliding window per account, over all endpoints. Each process
asks this bucket before each upstream attempt. GCRA (the generic cell rate algorithm) keeps one
number per bucket, the theoretical arrival time, so a grant is one atomic script call with no
per-request state. With a sustained rate r (one cell per interval T = W/r) and a burst B, any
L seconds hold at most B + floor(L/T) grants. Genlook counts requests when they reach it, not
when we granted them: a request that waits longer after its grant than another (a busy event
loop, a slow upload, a loaded machine) lets the grants of W + s seconds land in one window,
where s is the spread of those delays. So the shape keeps B + floor((W + s)/T) one cell under
N for s = ARRIVAL_SPREAD, taking r = margin*N per window or less (see `BudgetShape.for_limit`).

Calls that start work (uploads, creates) may use the whole burst; status polls must leave
`poll_reserve` cells free, so when the budget is tight a start is always granted first.
A 429 from upstream sets a pause that every process honours before the next grant.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from service.genlook.client import Priority
from service.keys import Keys
from service.namespacing import DEFAULT_ACCOUNT

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tolerance + 2 * interval + 1000))
redis.call('HINCRBYFLOAT', KEYS[3], 'upstream_budget_grants', 1)
return 0
"""

_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return ms
"""


# Seconds between one request's grant-to-arrival delay and another's that the bound absorbs.
# Measured at emulator speed 10 on a shared 2-core machine (bench.throughput's `uploads`
# workload, docs/benchmarks.md §2): p99 25 ms, max 86 ms at load ~3; p99 130-337 ms under 8-9.
# With the spare cell (rounding) a 6 s window then absorbs ~0.19 s; Genlook's 60 s window
# absorbs 0.62 s at no cost (97/min either way). At the bench's 6 s window the rate is 96, not
# 97: more spread would take it under the 95 % the bench holds to.
ARRIVAL_SPREAD = 0.12
# Starts may use one cell of the burst that polls may not (`tolerance_ms`).
_MIN_BURST = 2


@dataclass(frozen=True, slots=True)
class BudgetShape:
    interval_ms: float
    burst: int

    @classmethod
    def for_limit(cls, limit: int, window: float, margin: float) -> BudgetShape:
        """The fastest shape, at most `margin` of the limit, whose grants put at most
        limit - 1 requests in any `window` of arrivals when arrival delays differ by up to
        ARRIVAL_SPREAD (the last cell absorbs clock rounding between us and Genlook)."""
        rate = max(1, math.floor(limit * margin))
        # A limit too small to spare a start-only cell at that rate goes without one.
        least = min(_MIN_BURST, max(1, limit - 1 - rate))
        while True:
            burst = limit - 1 - math.floor(rate * (window + ARRIVAL_SPREAD) / window)
            if burst >= least or rate == 1:
                return cls(interval_ms=window * 1000.0 / rate, burst=max(1, burst))
            rate -= 1

    def tolerance_ms(self, priority: Priority) -> float:
        # Polls and other reads keep one cell of the burst free for starts.
        reserve = 0 if priority is Priority.START or self.burst <= 1 else 1
        return (self.burst - 1 - reserve) * self.interval_ms


class UpstreamBudget:
    def __init__(
        self, redis: Redis, keys: Keys, shape: BudgetShape, account: str = DEFAULT_ACCOUNT
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._shape = shape
        # One bucket and one 429 pause per upstream account: Genlook limits each key apart.
        self._bucket = keys.account_budget(account)
        self._paused = keys.account_budget_pause(account)
        # One asker per priority per process: the others queue here instead of all polling
        # Redis and waking at the same instant (a saturated worker spent most of its CPU so).
        self._askers = {p: asyncio.Lock() for p in Priority}
        self._acquire = redis.register_script(_ACQUIRE)
        self._pause = redis.register_script(_PAUSE)

    @property
    def shape(self) -> BudgetShape:
        return self._shape

    async def try_acquire(self, priority: Priority = Priority.OTHER) -> float:
        """Take one cell if one is free: 0.0 when granted, else seconds until worth asking."""
        wait_ms = await self._acquire(
            keys=[self._bucket, self._paused, self._keys.metrics],
            args=[
                round(self._shape.interval_ms, 3),
                round(self._shape.tolerance_ms(priority), 3),
            ],
        )
        return float(wait_ms) / 1000.0

    async def acquire(self, priority: Priority = Priority.OTHER) -> float:
        """Wait until a cell is granted; returns the seconds spent waiting."""
        started = time.monotonic()
        async with self._askers[priority]:
            # The bucket lives in Redis and frees cells with time: there is no event to await.
            while (wait := await self.try_acquire(priority)) > 0:  # noqa: ASYNC110
                # A little jitter so processes sharing the bucket do not ask in lockstep.
                await asyncio.sleep(wait + random.uniform(0, self._shape.interval_ms / 4000))
        return time.monotonic() - started

    async def pause(self, seconds: float) -> None:
        """Stop every process from calling upstream for `seconds` (a 429's Retry-After)."""
        await self._pause(keys=[self._paused], args=[max(1, math.ceil(seconds * 1000))])

    async def paused_for(self) -> float:
        ms = await self._redis.pttl(self._paused)
        return max(0.0, float(ms) / 1000.0)
