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

Lanes (docs/lanes.md): a start that names a `Claim` registers as a waiter of its lane and is
granted only at its turn: the interactive lane's waiters before any batch waiter, and within a
lane by weighted fair queuing across apps (each waiter is tagged with its app's virtual finish
time, `max(lane clock, app's last tag) + 1/weight`; the lowest tag goes first). This module
only chooses among waiters; the bucket itself (its rate, its keys) is unchanged.

Spare cells: work that nobody waits for yet (a photo uploaded ahead of the try-on that will use
it) takes a cell only when one is free now, with no start waiting in either lane and a cell of
the burst still kept for starts; it never waits for one. At a sale peak it gives way entirely
to the try-ons being sent, and the try-on that needs the photo uploads it at its own turn.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from service.genlook.client import Priority
from service.keys import Keys
from service.lanes import INTERACTIVE, Claim, Lane
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

# A laned start: the bucket's grant (as _ACQUIRE) only at the waiter's turn.
# KEYS: tat, pause, metrics, interactive waiters, batch waiters (zsets: waiter -> tag),
#       due (zset: waiter -> ms by which it asks again), tags (hash: lane clocks, apps' last tags)
# ARGV: interval, tolerance, lane (1 interactive, 2 batch), waiter, app, weight, grace ms
_ACQUIRE_LANED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local lane = tonumber(ARGV[3])
local waiter = ARGV[4]
-- A waiter that stopped asking (its process died) leaves its place after a grace.
local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now - tonumber(ARGV[7]))
for _, w in ipairs(stale) do
  redis.call('ZREM', KEYS[4], w)
  redis.call('ZREM', KEYS[5], w)
  redis.call('ZREM', KEYS[6], w)
end
local mine = KEYS[3 + lane]
local tag = tonumber(redis.call('ZSCORE', mine, waiter))
if not tag then
  local clock = tonumber(redis.call('HGET', KEYS[7], 'clock:' .. lane) or '0')
  local last = tonumber(redis.call('HGET', KEYS[7], lane .. ':' .. ARGV[5]) or '0')
  tag = math.max(clock, last) + 1 / tonumber(ARGV[6])
  redis.call('HSET', KEYS[7], lane .. ':' .. ARGV[5], tag)
  redis.call('PEXPIRE', KEYS[7], 86400000)
  redis.call('ZADD', mine, tag, waiter)
end
local wait = redis.call('PTTL', KEYS[2])
if wait <= 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  wait = math.ceil(tat - now - tolerance)
  if wait <= 0 then
    local head = redis.call('ZRANGE', mine, 0, 0)[1]
    if head ~= waiter or (lane == 2 and redis.call('ZCARD', KEYS[4]) > 0) then
      -- Not this waiter's turn: ask again soon, the head is about to take the cell.
      wait = math.max(2, math.ceil(interval / 4))
    else
      redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tolerance + 2 * interval + 1000))
      redis.call('HINCRBYFLOAT', KEYS[3], 'upstream_budget_grants', 1)
      redis.call('ZREM', mine, waiter)
      redis.call('ZREM', KEYS[6], waiter)
      redis.call('HSET', KEYS[7], 'clock:' .. lane, tag)
      return 0
    end
  end
end
redis.call('ZADD', KEYS[6], now + wait, waiter)
return wait
"""

# A spare cell: KEYS as _ACQUIRE, then the interactive and batch waiters. -1 while any start
# waits in a lane, else _ACQUIRE's answer (0: granted).
_ACQUIRE_SPARE = (
    """
if redis.call('ZCARD', KEYS[4]) > 0 or redis.call('ZCARD', KEYS[5]) > 0 then return -1 end
"""
    + _ACQUIRE
)

_LEAVE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
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
# A laned waiter that has not asked again this long after it said it would has left (its
# process died mid-wait): its place in the lane is given up.
_WAITER_GRACE_MS = 2000
_LANE_INDEX: dict[Lane, int] = {INTERACTIVE: 1, "batch": 2}


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
        # The lanes share out this account's cells: their waiters and clocks are its own.
        self._lane_waiters = [
            keys.budget_waiters(INTERACTIVE, account),
            keys.budget_waiters("batch", account),
            keys.budget_waiters_due(account),
        ]
        self._fair_tags = keys.budget_fair_tags(account)
        # One asker per priority per process: the others queue here instead of all polling
        # Redis and waking at the same instant (a saturated worker spent most of its CPU so).
        # A laned start has its own asker per lane and app, so every app waiting in this
        # process has its place in the lanes (the fair share is decided in Redis, not here).
        self._askers: dict[object, asyncio.Lock] = {p: asyncio.Lock() for p in Priority}
        self._acquire = redis.register_script(_ACQUIRE)
        self._acquire_laned = redis.register_script(_ACQUIRE_LANED)
        self._acquire_spare = redis.register_script(_ACQUIRE_SPARE)
        self._leave = redis.register_script(_LEAVE)
        self._pause = redis.register_script(_PAUSE)
        self._waiter_prefix = f"{uuid.uuid4().hex[:12]}:"
        self._waiters = itertools.count()

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

    async def try_acquire_spare(self) -> bool:
        """Take a cell for work nobody waits for yet, only if one is free now with no start
        waiting for it (module docstring); never waits."""
        answer = await self._acquire_spare(
            keys=[self._bucket, self._paused, self._keys.metrics, *self._lane_waiters[:2]],
            # A poll's tolerance: the burst's last cell stays for starts.
            args=[
                round(self._shape.interval_ms, 3),
                round(self._shape.tolerance_ms(Priority.POLL), 3),
            ],
        )
        return int(answer) == 0

    async def try_acquire_laned(self, claim: Claim, waiter: str) -> float:
        """`try_acquire` for a start of `claim`'s lane and app; `waiter` keeps its place in
        the lane across asks (and `leave` gives it up)."""
        wait_ms = await self._acquire_laned(
            keys=[
                self._bucket,
                self._paused,
                self._keys.metrics,
                *self._lane_waiters,
                self._fair_tags,
            ],
            args=[
                round(self._shape.interval_ms, 3),
                round(self._shape.tolerance_ms(Priority.START), 3),
                _LANE_INDEX[claim.lane],
                waiter,
                claim.app,
                max(1, claim.weight),
                _WAITER_GRACE_MS,
            ],
        )
        return float(wait_ms) / 1000.0

    async def leave(self, waiter: str) -> None:
        await self._leave(keys=self._lane_waiters, args=[waiter])

    def new_waiter(self) -> str:
        return f"{self._waiter_prefix}{next(self._waiters)}"

    async def acquire(
        self, priority: Priority = Priority.OTHER, claim: Claim | None = None
    ) -> float:
        """Wait until a cell is granted; returns the seconds spent waiting. A start with a
        `claim` waits for its turn in its lane (see the module's docstring)."""
        started = time.monotonic()
        if claim is None or priority is not Priority.START:
            async with self._askers[priority]:
                # The bucket lives in Redis and frees cells with time: no event to await.
                while (wait := await self.try_acquire(priority)) > 0:
                    await self._sleep(wait)
            return time.monotonic() - started
        async with self._askers.setdefault((claim.lane, claim.app), asyncio.Lock()):
            waiter = self.new_waiter()
            try:
                while (wait := await self.try_acquire_laned(claim, waiter)) > 0:
                    await self._sleep(wait)
            except BaseException:
                # Cancelled (a deadline, a cancel) or failed: give the place up at once rather
                # than hold the lane's head until the grace passes.
                await asyncio.shield(self.leave(waiter))
                raise
        return time.monotonic() - started

    async def _sleep(self, wait: float) -> None:
        # A little jitter so processes sharing the bucket do not ask in lockstep.
        await asyncio.sleep(wait + random.uniform(0, self._shape.interval_ms / 4000))

    async def pause(self, seconds: float) -> None:
        """Stop every process from calling upstream for `seconds` (a 429's Retry-After)."""
        await self._pause(keys=[self._paused], args=[max(1, math.ceil(seconds * 1000))])

    async def paused_for(self) -> float:
        ms = await self._redis.pttl(self._paused)
        return max(0.0, float(ms) / 1000.0)
