"""A photo is sent upstream ahead of its try-on only with spare budget, in process: the worker's
`upload_photo` job called as arq calls it, the runner generating, the emulator over HTTP
(tests/integration/runner/conftest.py's Harness). At a sale peak most uploaded photos never
reach a create in time: their uploads must not take the cells the creates wait for.
"""

from __future__ import annotations

import asyncio
import time

from service.lanes import INTERACTIVE
from workers.jobs import upload_photo

from tests.integration.runner.conftest import Harness, error_code


def uploads(h: Harness) -> int:
    return int(h.counters()["requests"].get("upload_image", 0))


async def test_with_the_budget_idle_the_photo_goes_ahead_and_the_tryon_finds_it(
    harness: Harness,
) -> None:
    h = harness
    await h.put_product()
    photo = await h.upload_photo()
    assert await upload_photo({"res": h.res}, photo) == "uploaded"
    assert uploads(h) == 1
    record = await h.drive(await h.accept(photo))
    assert record.status == "completed", record
    assert uploads(h) == 1  # the try-on sent only its create


async def test_while_a_start_waits_the_photo_is_left_to_its_tryon(harness: Harness) -> None:
    h = harness
    await h.put_product()
    photo = await h.upload_photo()
    # Another worker's create waiting for its turn in the interactive lane.
    waiters = h.res.keys.budget_waiters(INTERACTIVE)
    await h.res.redis.zadd(waiters, {"another-worker:1": 1.0})
    assert await upload_photo({"res": h.res}, photo) == "left to its try-on"
    assert uploads(h) == 0
    await h.res.redis.delete(waiters)
    # The try-on that uses it uploads it at its own turn, once.
    record = await h.drive(await h.accept(photo))
    assert record.status == "completed", record
    assert uploads(h) == 1
    assert h.cost() == (1, 1, 1)


async def test_a_tryon_whose_photo_waits_for_the_budget_ends_at_its_deadline_uploading_nothing(
    harness: Harness,
) -> None:
    """Its photo not upstream yet and the budget paused (as after a 429) past the try-on's
    deadline: the wait for the upload's cell ends at the deadline, as the create's does; the
    cell is not spent on a photo for a shopper who left."""
    h = harness
    await h.put_product()
    tryon_id = await h.accept(await h.upload_photo(), deadlineSeconds=1)
    await h.res.budget.pause(4.0)
    started = time.monotonic()
    record = await h.drive(tryon_id)
    waited = time.monotonic() - started
    assert error_code(record) == "DEADLINE_EXCEEDED", record
    assert record.spent_nothing
    assert waited < 3.0, waited  # at its deadline, not when the budget came back
    await asyncio.sleep(max(0.0, 4.2 - waited))
    assert uploads(h) == 0
    assert h.cost() == (0, 0, 0)
