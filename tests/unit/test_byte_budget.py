"""The byte budget photo cleanings share: pure asyncio logic, no I/O."""

from __future__ import annotations

import asyncio

import pytest
from service.byte_budget import BudgetBusy, ByteBudget, OverBudget


async def test_holders_share_the_capacity_and_waiters_go_first_come_first_served() -> None:
    budget = ByteBudget(100, wait=5)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, size: int) -> None:
        async with budget.hold(size):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("a", 70))
    await asyncio.sleep(0)
    big = asyncio.create_task(hold("big", 60))
    await asyncio.sleep(0)
    small = asyncio.create_task(hold("small", 20))  # would fit now, but waits behind `big`
    await asyncio.sleep(0.01)
    assert order == ["a"]
    assert budget.free == 30
    release.set()
    await asyncio.gather(first, big, small)
    assert order == ["a", "big", "small"]
    assert budget.free == 100


async def test_a_request_over_the_whole_budget_is_refused_at_once() -> None:
    budget = ByteBudget(100, wait=5)
    with pytest.raises(OverBudget) as caught:
        async with budget.hold(101):
            pass
    assert (caught.value.needed, caught.value.capacity) == (101, 100)
    assert budget.free == 100


async def test_a_bounded_wait_ends_busy_and_leaves_nothing_taken() -> None:
    budget = ByteBudget(100, wait=0.05)
    async with budget.hold(80):
        with pytest.raises(BudgetBusy) as caught:
            async with budget.hold(30):
                pass
        assert caught.value.retry_after >= 1
        assert budget.free == 20
    assert budget.free == 100
    async with budget.hold(100):  # nobody is left queued
        assert budget.free == 0


async def test_a_cancelled_waiter_lets_those_behind_it_through() -> None:
    budget = ByteBudget(100, wait=5)
    done = asyncio.Event()
    got: list[int] = []

    async def hold(size: int) -> None:
        async with budget.hold(size):
            got.append(size)
            await done.wait()

    async with budget.hold(50):
        blocked = asyncio.create_task(hold(80))
        await asyncio.sleep(0)
        behind = asyncio.create_task(hold(40))
        await asyncio.sleep(0.01)
        assert got == []  # first come, first served: 40 would fit, but 80 came first
        blocked.cancel()
        await asyncio.sleep(0.01)
        assert got == [40]
        assert budget.free == 10
        done.set()
        await behind
    assert budget.free == 100
