"""What the create call's answer decides (docs/pipeline.md, "the create call in flight"): retry
or fail, and whether a credit may have been spent. One answer per test, injected at the
emulator; each asserts what reached Genlook and what the record says."""

from __future__ import annotations

import pytest
from service.tryons.models import TryOnRecord
from workers.runner import RetryLater

from tests.integration.runner.conftest import Harness, error_code


async def test_a_completed_create_spends_one_credit(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    record = await harness.drive(tryon_id)
    assert record.status == "completed"
    assert record.stored_result is not None
    assert record.generation_id
    assert harness.cost() == (1, 1, 1)
    assert harness.retries == []
    assert await harness.quota_held() == 1  # the credit was spent: the unit stays taken


async def test_a_503_with_genlooks_code_is_retried_and_spends_one_credit(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    harness.fault(status=503, code="SERVICE_UNAVAILABLE", count=1)

    with pytest.raises(RetryLater) as later:
        await harness.run(tryon_id)
    refused = await harness.record(tryon_id)
    # Refused before it started: the marker is cleared, so the next attempt may create.
    assert (refused.status, refused.create_started_at) == ("submitting", None)
    assert later.value.delay > 0

    record = await harness.drive(tryon_id)
    assert record.status == "completed"
    assert harness.cost() == (2, 1, 1)


@pytest.mark.parametrize(
    ("status", "code"), [(500, "INTERNAL_ERROR"), (502, "BAD_GATEWAY"), (504, "GATEWAY_TIMEOUT")]
)
async def test_a_500_or_a_proxys_5xx_is_an_unknown_outcome_never_resent(
    harness: Harness, status: int, code: str
) -> None:
    tryon_id = await harness.tryon()
    harness.fault(status=status, code=code)

    record = await harness.drive(tryon_id)
    assert record.status == "failed"
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert record.create_started_at is not None
    assert record.generation_id is None
    assert harness.cost() == (1, 0, 0)  # one call, never a second
    # Genlook may have charged it: the quota unit is not given back.
    assert await harness.quota_held() == 1


@pytest.mark.parametrize("mode", ["drop", "drop_after"])
async def test_a_dropped_connection_is_an_unknown_outcome_never_resent(
    harness: Harness, mode: str
) -> None:
    """`drop`: cut before Genlook acted; `drop_after`: Genlook created the generation and the
    answer was lost. The runner cannot tell them apart, and the policy is at most once."""
    tryon_id = await harness.tryon()
    harness.fault(mode=mode, count=1)

    record = await harness.drive(tryon_id)
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert await harness.run(tryon_id) == "failed"  # a later attempt sends nothing either
    created = 1 if mode == "drop_after" else 0
    assert harness.cost() == (1, created, created)
    assert await harness.quota_held() == 1


@pytest.mark.parametrize("harness_env", [{"GENLOOK_SYNC_TIMEOUT": "0.5"}])
async def test_a_create_that_times_out_is_an_unknown_outcome(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    harness.fault(mode="timeout", count=1)

    record = await harness.drive(tryon_id)
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert harness.creates() == 1


async def test_a_crash_after_the_marker_fails_without_calling_genlook(harness: Harness) -> None:
    """A worker killed while its create was in flight left the marker and no generation id."""
    tryon_id = await harness.tryon()

    def sent_then_killed(r: TryOnRecord) -> TryOnRecord:
        r.status, r.create_started_at = "submitting", 1.0
        return r

    await harness.res.store.update(tryon_id, sent_then_killed)
    record = await harness.drive(tryon_id)
    assert error_code(record) == "UPSTREAM_OUTCOME_UNKNOWN"
    assert harness.counters()["requests"] == {}  # not even the photo upload


async def test_a_refused_create_fails_with_genlooks_code_and_gives_the_quota_back(
    harness: Harness,
) -> None:
    tryon_id = await harness.tryon()
    harness.emulator.reset(credits=0)

    record = await harness.drive(tryon_id)
    assert error_code(record) == "INSUFFICIENT_CREDITS"
    # Nothing was created: the record says so, and the app's cap unit is free again.
    assert record.create_started_at is None
    assert record.generation_id is None
    assert harness.cost() == (1, 0, 0)
    assert await harness.quota_held() == 0


async def test_a_429_pauses_the_fleet_and_the_retry_spends_one_credit(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    # More 429s than the client retries in one call: the attempt hands over to arq.
    attempts = harness.res.genlook.max_retries + 1
    harness.fault(status=429, count=attempts)

    with pytest.raises(RetryLater) as later:
        await harness.run(tryon_id)
    assert later.value.delay >= 1.0  # the emulator's Retry-After
    assert await harness.res.budget.paused_for() > 0  # every process waits, not only this one
    refused = await harness.record(tryon_id)
    assert (refused.status, refused.create_started_at) == ("submitting", None)

    record = await harness.drive(tryon_id)
    assert record.status == "completed", record
    assert harness.cost() == (attempts + 1, 1, 1)
