"""A try-on's job stops (a crash, a deploy, a deadline, a cancel) and whatever runs next picks
it up from its record: a recorded generation is resumed and never created again, a create in
flight is let finish, and a try-on that never reached Genlook costs nothing."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from service.tryons.models import TryOnRecord
from workers.runner import RetryLater

from tests.integration.runner.conftest import Harness, error_code

POLL = {"GENLOOK_WAIT_STRATEGY": "poll"}


def slow_generations(harness: Harness, real_seconds: float) -> None:
    """Every generation takes exactly this long (the emulator runs EMULATOR_SPEED x faster)."""
    speed = harness.emulator.control("GET", "clock")["speed"]
    harness.emulator.reset(durationMedian=real_seconds * speed, durationSigma=0)


def has_generation(r: TryOnRecord) -> bool:
    return r.generation_id is not None


async def cancelled(attempt: asyncio.Task[str]) -> bool:
    with contextlib.suppress(asyncio.CancelledError):
        await attempt
        return False
    return True


@pytest.mark.parametrize("harness_env", [POLL])
async def test_a_recorded_generation_is_resumed_never_created_again(harness: Harness) -> None:
    # Long enough that the attempt is still waiting when cancelled, on a loaded machine too.
    slow_generations(harness, 3.0)
    tryon_id = await harness.tryon()
    attempt = asyncio.create_task(harness.run(tryon_id))
    waiting = await harness.wait_for(tryon_id, has_generation)
    attempt.cancel()  # the worker dies while waiting for the result
    assert await cancelled(attempt)
    assert waiting.status == "running"

    record = await harness.drive(tryon_id, runner=harness.new_runner())
    assert record.status == "completed"
    assert record.generation_id == waiting.generation_id
    assert harness.cost() == (1, 1, 1)
    assert harness.counters()["requests"]["get_generation"] >= 1


async def test_shutdown_lets_the_create_in_flight_finish(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    harness.fault(latency=0.5, count=1)  # the create call takes half a second to answer
    attempt = asyncio.create_task(harness.run(tryon_id))
    await harness.wait_for(tryon_id, lambda r: r.create_started_at is not None)

    assert harness.gate.close() == 0  # SIGTERM: nothing cut inside the create call
    # The create finished (the generation is recorded, its credit spent); copying its result
    # is a step of its own, which the stopping worker hands over like any other.
    with pytest.raises(RetryLater):
        await attempt
    handed = await harness.record(tryon_id)
    assert (handed.status, handed.generation_id is not None) == ("storing", True)
    record = await harness.drive(tryon_id, runner=harness.new_runner())
    assert record.status == "completed"
    assert harness.cost() == (1, 1, 1)


@pytest.mark.parametrize("harness_env", [POLL])
async def test_shutdown_hands_a_waiting_tryon_over_at_once(harness: Harness) -> None:
    slow_generations(harness, 1.0)
    tryon_id = await harness.tryon()
    attempt = asyncio.create_task(harness.run(tryon_id))
    await harness.wait_requests("get_generation")  # past its create, waiting for the result

    assert harness.gate.close() == 1
    assert await cancelled(attempt)
    with pytest.raises(RetryLater):  # the stopping worker starts nothing more
        await harness.run(tryon_id)

    record = await harness.drive(tryon_id, runner=harness.new_runner())
    assert record.status == "completed"
    assert harness.cost() == (1, 1, 1)


@pytest.mark.parametrize("harness_env", [POLL])
async def test_a_create_answered_after_shutdown_hands_the_wait_over(harness: Harness) -> None:
    """The create call is let finish; the wait for its result is not this worker's any more."""
    slow_generations(harness, 2.0)
    tryon_id = await harness.tryon()
    harness.fault(endpoint="create_try_on", latency=0.5, count=1)
    attempt = asyncio.create_task(harness.run(tryon_id))
    await harness.wait_for(tryon_id, lambda r: r.create_started_at is not None)

    assert harness.gate.close() == 0
    with pytest.raises(RetryLater):  # at once: not after the 2 s generation
        await asyncio.wait_for(attempt, 1.5)
    record = await harness.record(tryon_id)
    assert (record.status, record.generation_id is not None) == ("running", True)

    assert (await harness.drive(tryon_id, runner=harness.new_runner())).status == "completed"
    assert harness.creates() == 1


async def test_shutdown_during_the_budget_wait_sends_no_create(harness: Harness) -> None:
    photo = await harness.upload_photo()
    await harness.put_product()
    assert (await harness.drive(await harness.accept(photo))).status == "completed"
    # Photo and product known: only the create is left (not the result cache: reuse off).
    tryon_id = await harness.accept(photo, reuse=False)
    await harness.res.budget.pause(1.0)  # a 429 elsewhere in the fleet
    attempt = asyncio.create_task(harness.run(tryon_id))
    await harness.wait_for(tryon_id, lambda r: r.status == "submitting")

    assert harness.gate.close() == 1
    assert await cancelled(attempt)
    record = await harness.record(tryon_id)
    assert (record.status, record.create_started_at) == ("submitting", None)
    assert harness.creates() == 1  # the first try-on's only

    assert (await harness.drive(tryon_id, runner=harness.new_runner())).status == "completed"
    assert harness.cost() == (2, 2, 2)


@pytest.mark.parametrize("harness_env", [{"WORKER_TRYON_DEADLINE": "0.2"}])
async def test_a_deadline_passed_before_sending_spends_nothing(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    await asyncio.sleep(0.3)  # the job waited in the queue past the try-on's deadline

    record = await harness.drive(tryon_id)
    assert error_code(record) == "DEADLINE_EXCEEDED"
    assert harness.counters()["requests"] == {}
    assert await harness.quota_held() == 0


@pytest.mark.parametrize("harness_env", [{"WORKER_TRYON_DEADLINE": "0.5"}])
async def test_a_deadline_passed_during_the_budget_wait_spends_nothing(harness: Harness) -> None:
    """Design promise 8: the budget wait (a fleet pause, a backlog) outlasts the try-on."""
    tryon_id = await harness.tryon()
    await harness.res.budget.pause(1.0)  # a 429 elsewhere in the fleet

    record = await harness.drive(tryon_id)
    assert error_code(record) == "DEADLINE_EXCEEDED"
    assert harness.cost() == (0, 0, 0)
    assert await harness.quota_held() == 0


@pytest.mark.parametrize("harness_env", [{"WORKER_TRYON_DEADLINE": "0.2"}])
async def test_a_deadline_passed_after_a_create_in_flight_is_an_unknown_outcome(
    harness: Harness,
) -> None:
    tryon_id = await harness.tryon()

    def sent_then_killed(r: TryOnRecord) -> TryOnRecord:
        r.status, r.create_started_at = "submitting", r.created_at
        return r

    await harness.res.store.update(tryon_id, sent_then_killed)
    await asyncio.sleep(0.3)

    record = await harness.drive(tryon_id)
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert harness.counters()["requests"] == {}
    assert await harness.quota_held() == 1  # a credit may have been spent


@pytest.mark.parametrize("harness_env", [{**POLL, "WORKER_TRYON_DEADLINE": "1"}])
async def test_a_deadline_passed_while_the_generation_runs(harness: Harness) -> None:
    slow_generations(harness, 5.0)
    tryon_id = await harness.tryon()

    record = await harness.drive(tryon_id)
    assert error_code(record) == "DEADLINE_EXCEEDED"
    assert record.generation_id is not None
    assert harness.creates() == 1
    assert await harness.quota_held() == 1  # the generation was charged


async def test_a_failed_generation_gives_its_credit_and_quota_back(harness: Harness) -> None:
    await harness.put_product(image="no-such-image.png")  # Genlook cannot fetch it
    tryon_id = await harness.accept(await harness.upload_photo())

    record = await harness.drive(tryon_id)
    assert record.status == "failed"
    assert record.upstream_status == "FAILED"
    assert error_code(record) == "PRODUCT_IMAGE_FETCH_FAILED"
    counters = harness.counters()
    assert (counters["creditsSpent"], counters["creditsRefunded"]) == (1, 1)
    assert harness.cost() == (1, 1, 0)
    assert await harness.quota_held() == 0


async def test_a_tryon_canceled_before_sending_costs_nothing(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    r = await harness.gateway.delete(f"/v1/try-ons/{tryon_id}")
    assert r.status_code == 200, r.text

    assert await harness.run(tryon_id) == "canceled"
    assert harness.counters()["requests"] == {}
    assert await harness.quota_held() == 0
