"""Lanes in the shared budget, against a real Redis: the interactive lane goes before the batch
lane, and apps in one lane share the cells by weight (docs/lanes.md)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from redis.asyncio import Redis
from service.budget import BudgetShape, UpstreamBudget
from service.genlook.client import Priority
from service.keys import Keys
from service.lanes import BATCH, INTERACTIVE, Claim

# 20 grants a second, no burst to speak of: every grant is a choice among waiters.
_SHAPE = BudgetShape(interval_ms=50, burst=1)


async def _saturate(budget: UpstreamBudget, claim: Claim, log: list[str], until: float) -> None:
    while time.monotonic() < until:
        await budget.acquire(Priority.START, claim)
        log.append(claim.app)


async def test_an_interactive_start_is_granted_before_queued_batch_starts(redis: Redis) -> None:
    keys = Keys("t:")
    # Two processes: one full of batch starts, one asking for a single interactive start.
    batch_side = UpstreamBudget(redis, keys, _SHAPE)
    live_side = UpstreamBudget(redis, keys, _SHAPE)
    grants: list[str] = []
    until = time.monotonic() + 1.5
    batch = asyncio.create_task(_saturate(batch_side, Claim(BATCH, "lookbook"), grants, until))
    await asyncio.sleep(0.3)  # the batch lane is saturating the bucket
    asked = time.monotonic()
    waited = await live_side.acquire(Priority.START, Claim(INTERACTIVE, "shop"))
    took = time.monotonic() - asked
    await batch
    # Granted at the next free cell (one interval, plus a poll's jitter), not behind the batch.
    assert waited < 0.2, took
    assert "lookbook" in grants


async def test_batch_starts_wait_while_interactive_ones_are_waiting(redis: Redis) -> None:
    keys = Keys("t:")
    budget = UpstreamBudget(redis, keys, _SHAPE)
    other = UpstreamBudget(redis, keys, _SHAPE)
    order: list[str] = []
    until = time.monotonic() + 1.0
    live = asyncio.create_task(_saturate(budget, Claim(INTERACTIVE, "shop"), order, until))
    await asyncio.sleep(0.1)
    # While the interactive lane keeps a waiter, the batch start gets nothing.
    try:
        await asyncio.wait_for(other.acquire(Priority.START, Claim(BATCH, "lookbook")), 0.6)
        granted = True
    except TimeoutError:
        granted = False
    await live
    assert not granted
    assert set(order) == {"shop"}
    # The cancelled batch waiter gave its place up: a later batch start is granted at once.
    assert await other.acquire(Priority.START, Claim(BATCH, "lookbook")) < 0.2


async def test_apps_in_one_lane_share_cells_by_weight(redis: Redis) -> None:
    keys = Keys("t:")
    grants: list[str] = []
    until = time.monotonic() + 2.5
    claims = [Claim(BATCH, "big", weight=3), Claim(BATCH, "small", weight=1)]
    # Each app asks from two processes with two askers each: always waiting, never idle.
    tasks = [
        _saturate(UpstreamBudget(redis, keys, _SHAPE), claim, grants, until)
        for claim in claims
        for _ in range(2)
        for _ in range(2)
    ]
    await asyncio.gather(*tasks)
    counts = Counter(grants)
    assert sum(counts.values()) > 30
    share = counts["big"] / (counts["big"] + counts["small"])
    assert 0.65 < share < 0.85, counts


async def test_a_burst_of_one_app_does_not_starve_another(redis: Redis) -> None:
    """App A has eight waiters asking; app B's one start is granted within a few cells."""
    keys = Keys("t:")
    grants: list[str] = []
    until = time.monotonic() + 1.5
    flood = [
        asyncio.create_task(
            _saturate(UpstreamBudget(redis, keys, _SHAPE), Claim(INTERACTIVE, "a"), grants, until)
        )
        for _ in range(8)
    ]
    await asyncio.sleep(0.3)
    waited = await UpstreamBudget(redis, keys, _SHAPE).acquire(
        Priority.START, Claim(INTERACTIVE, "b")
    )
    await asyncio.gather(*flood)
    # FIFO across eight waiters would be ~8 cells (0.4 s); fair share: the next one or two.
    assert waited < 0.2


async def test_a_dead_waiter_gives_its_place_up_after_the_grace(redis: Redis) -> None:
    keys = Keys("t:")
    budget = UpstreamBudget(redis, keys, _SHAPE)
    # A waiter that registered and then vanished (its process was killed): never leaves.
    await budget.try_acquire(Priority.START)  # take the only cell so the ghost has to wait
    assert await budget.try_acquire_laned(Claim(INTERACTIVE, "ghost"), "ghost-1") > 0
    started = time.monotonic()
    await budget.acquire(Priority.START, Claim(BATCH, "lookbook"))
    assert 1.5 < time.monotonic() - started < 4.0


async def test_a_spare_cell_only_when_free_now_and_no_start_waits(redis: Redis) -> None:
    """Work nobody waits for yet (a photo ahead of its try-on) takes a cell only when one is
    free now, a cell of the burst still kept for starts, and no start waits in either lane; it
    never waits."""
    keys = Keys("t:")
    budget = UpstreamBudget(redis, keys, BudgetShape(interval_ms=200, burst=3))
    assert await budget.try_acquire_spare()
    assert await budget.try_acquire_spare()
    # The burst's last cell is a start's.
    asked = time.monotonic()
    assert not await budget.try_acquire_spare()
    assert time.monotonic() - asked < 0.1
    assert await budget.try_acquire(Priority.START) == 0.0


async def test_no_spare_cell_while_a_start_waits_in_a_lane(redis: Redis) -> None:
    keys = Keys("t:")
    budget = UpstreamBudget(redis, keys, BudgetShape(interval_ms=100, burst=3))
    for lane in (INTERACTIVE, BATCH):
        # Another process's start waiting for its turn (a free bucket, but not its turn yet).
        await redis.zadd(keys.budget_waiters(lane), {"other:1": 1.0})
        assert not await budget.try_acquire_spare()
        await redis.delete(keys.budget_waiters(lane))
    assert await budget.try_acquire_spare()


async def test_no_spare_cell_during_a_pause(redis: Redis) -> None:
    budget = UpstreamBudget(redis, Keys("t:"), BudgetShape(interval_ms=1, burst=10))
    await budget.pause(0.3)
    assert not await budget.try_acquire_spare()
