"""The one Retry-After parser and the one job backoff (pure logic)."""

from __future__ import annotations

import pytest
from service.retrying import backoff, parse_retry_after


@pytest.mark.parametrize(
    "value",
    ["soon", "Mon, 99 Foo 2020 00:00:00 GMT", "Wed, 31 Feb 2026 25:61:00 GMT", "1e999", "-inf",
     "2 seconds", "\x00", "0x10"],
)  # fmt: skip
def test_garbage_is_ignored_not_raised(value: str) -> None:
    assert parse_retry_after(value) is None


def test_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("2.64") == 2.64
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0


def test_backoff_doubles_to_its_cap() -> None:
    assert [backoff(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(10_000) == 30.0
    assert backoff(3, base=0.1, cap=1.0) == 0.8
