"""The fleet-wide upstream rate budget: one GCRA bucket in Redis shared by every process.

Genlook allows N requests per sliding window per account, over all endpoints. Each process
asks this bucket before each upstream attempt. GCRA (the generic cell rate algorithm) keeps one
number per bucket, the theoretical arrival time, so a grant is one atomic script call with no
per-request state. With a sustained rate r and a burst B, any window W holds at most
B + r*W grants; we choose r = margin*N/W and B = N - r*W so that bound is exactly N.

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


@dataclass(frozen=True, slots=True)
class BudgetShape:
    interval_ms: float
    burst: int

    @classmethod
    def for_limit(cls, limit: int, window: float, margin: float) -> BudgetShape:
        rate = max(1, math.floor(limit * margin))
        burst = max(1, limit - rate - 1)
        return cls(interval_ms=window * 1000.0 / rate, burst=burst)

    def tolerance_ms(self, priority: Priority) -> float:
        # Polls and other reads keep one cell of the burst free for starts.
        reserve = 0 if priority is Priority.START or self.burst <= 1 else 1
        return (self.burst - 1 - reserve) * self.interval_ms


class UpstreamBudget:
    def __init__(self, redis: Redis, keys: Keys, shape: BudgetShape) -> None:
        self._redis = redis
        self._keys = keys
        self._shape = shape
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
            keys=[self._keys.budget, self._keys.budget_pause, self._keys.metrics],
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
        await self._pause(keys=[self._keys.budget_pause], args=[max(1, math.ceil(seconds * 1000))])

    async def paused_for(self) -> float:
        ms = await self._redis.pttl(self._keys.budget_pause)
        return max(0.0, float(ms) / 1000.0)
