"""The retry policy's decisions (pure logic; the live retries are in
tests/e2e/test_python_client.py)."""

from __future__ import annotations

from tryon_client.errors import (
    BadRequest,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
)
from tryon_client.retry import RetryPolicy

POLICY = RetryPolicy(max_retries=3, backoff=0.5, max_backoff=4.0, max_retry_after=30.0)


def limited(retry_after: float | None) -> RateLimited:
    return RateLimited("RATE_LIMITED", "slow down", status=429, retry_after=retry_after)


def test_retry_after_is_honoured_up_to_its_bound() -> None:
    assert POLICY.delay(0, limited(7), repeatable=False) == 7
    # A longer wait is not waited out silently: the caller gets RateLimited at once.
    assert POLICY.delay(0, limited(31), repeatable=True) is None


def test_refusals_that_did_nothing_are_retried_for_any_call() -> None:
    unavailable = ServiceUnavailable("INTAKE_PAUSED", "paused", status=503, retry_after=2)
    assert POLICY.delay(0, unavailable, repeatable=False) == 2
    delay = POLICY.delay(2, limited(None), repeatable=False)
    assert delay is not None
    assert 0 <= delay <= 2.0


def test_an_unknown_outcome_is_retried_only_when_repeating_is_safe() -> None:
    broken = TransportError("connection reset")
    assert POLICY.delay(0, broken, repeatable=False) is None
    assert POLICY.delay(0, broken, repeatable=True) is not None
    # Never connected: nothing was sent, so any call may go again.
    assert POLICY.delay(0, broken, repeatable=False, sent=False) is not None
    bad_gateway = ServerError("UPSTREAM_UNAVAILABLE", "down", status=502)
    assert POLICY.delay(0, bad_gateway, repeatable=False) is None
    assert POLICY.delay(0, bad_gateway, repeatable=True) is not None


def test_client_errors_and_exhausted_retries_are_raised() -> None:
    invalid = BadRequest("VALIDATION_FAILED", "no", status=400)
    assert POLICY.delay(0, invalid, repeatable=True) is None
    assert POLICY.delay(3, limited(1), repeatable=True) is None


def test_backoff_grows_and_is_capped() -> None:
    for retries_done in range(3):
        delay = RetryPolicy(max_retries=10, backoff=0.5, max_backoff=4.0)._backoff(retries_done)
        assert 0 <= delay <= min(4.0, 0.5 * 2**retries_done)
    assert RetryPolicy(backoff=0.5, max_backoff=4.0)._backoff(10) <= 4.0
