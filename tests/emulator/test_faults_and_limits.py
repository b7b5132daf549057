"""Rate limit, 429 storms and injected faults, and what each does (or does not) process."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import Emulator, assert_error
from tests.emulator.conftest import inline_product, try_on_body, upload


def test_rate_limit_sliding_window(api: httpx.Client, emulator: Emulator, asset_url: str) -> None:
    emulator.reset(rateLimit=5)
    image_id = upload(api)["imageId"]
    for _ in range(4):
        assert api.get("/account/credits").status_code == 200
    body = try_on_body(image_id, inline_product(asset_url))
    r = api.post("/try-on", json=body)
    error = assert_error(r, 429, "RATE_LIMITED")
    assert error["message"]
    # 60 emulator seconds at speed 100 is at most 0.6 real seconds: whole seconds, rounded up.
    assert r.headers["Retry-After"] == "1"
    retry_after = int(r.headers["Retry-After"])
    counters = emulator.counters()
    assert counters["rateLimited"] == 1
    assert counters["generationsCreated"] == 0
    assert counters["requests"]["create_try_on"] == 1
    assert "create_try_on" not in counters["processed"]
    time.sleep(retry_after + 0.05)
    assert api.post("/try-on", json=body).status_code == 200


def test_rate_limit_is_per_key(api: httpx.Client, emulator: Emulator) -> None:
    emulator.reset(rateLimit=2)
    emulator.control("PUT", "accounts/gk_other", {"rateLimit": 2})
    api.get("/account/credits")
    api.get("/account/credits")
    assert_error(api.get("/account/credits"), 429, "RATE_LIMITED")
    r = httpx.get(f"{emulator.base_url}/account/credits", headers={"x-api-key": "gk_other"})
    assert r.status_code == 200


def test_storm(api: httpx.Client, emulator: Emulator) -> None:
    emulator.control("POST", "storm", {"seconds": 0.5, "retryAfter": 2})
    r = api.get("/account/credits")
    assert_error(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] == "2"
    assert_error(api.get("/products"), 429, "RATE_LIMITED")
    time.sleep(0.6)
    assert api.get("/account/credits").status_code == 200
    counters = emulator.counters()
    assert counters["stormRejected"] == 2
    assert counters["processed"] == {"get_credits": 1}


def test_storm_retry_after_is_whole_seconds_rounded_up(
    api: httpx.Client, emulator: Emulator
) -> None:
    # HTTP's Retry-After is an integer: a decimal one (as `2.64` used to be) is garbage to a
    # strict client. Rounded up, so waiting as told is always long enough.
    emulator.control("POST", "storm", {"seconds": 0.3, "retryAfter": 2.64})
    r = api.get("/account/credits")
    assert_error(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] == "3"


@pytest.mark.parametrize(
    ("status", "code"), [(500, "INTERNAL_ERROR"), (503, "SERVICE_UNAVAILABLE")]
)
def test_error_fault_with_count(
    api: httpx.Client, emulator: Emulator, status: int, code: str
) -> None:
    emulator.control("POST", "faults", {"endpoint": "get_credits", "status": status, "count": 2})
    assert_error(api.get("/account/credits"), status, code)
    assert_error(api.get("/account/credits"), status, code)
    assert api.get("/account/credits").status_code == 200
    assert api.get("/products").status_code == 200  # other endpoints untouched
    counters = emulator.counters()
    assert counters["faultsInjected"] == 2
    assert counters["requests"]["get_credits"] == 3
    assert counters["processed"]["get_credits"] == 1


def test_fault_custom_code_429_and_clear(api: httpx.Client, emulator: Emulator) -> None:
    emulator.control("POST", "faults", {"endpoint": "*", "status": 429})
    r = api.get("/products")
    assert_error(r, 429, "RATE_LIMITED")
    assert "Retry-After" in r.headers
    emulator.control("DELETE", "faults")
    emulator.control("POST", "faults", {"endpoint": "*", "status": 502, "code": "UPSTREAM_DOWN"})
    assert_error(api.get("/products"), 502, "UPSTREAM_DOWN")
    emulator.control("DELETE", "faults")
    assert api.get("/products").status_code == 200


def test_fault_rate_zero_never_fires(api: httpx.Client, emulator: Emulator) -> None:
    emulator.control("POST", "faults", {"endpoint": "*", "status": 500, "rate": 0})
    for _ in range(5):
        assert api.get("/account/credits").status_code == 200


def test_latency_fault(api: httpx.Client, emulator: Emulator) -> None:
    emulator.control("POST", "faults", {"endpoint": "get_credits", "latency": 0.3, "count": 1})
    started = time.monotonic()
    assert api.get("/account/credits").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert emulator.counters()["processed"]["get_credits"] == 1


def test_timeout_fault_hangs_without_processing(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    image_id = upload(api)["imageId"]
    emulator.control("POST", "faults", {"endpoint": "create_try_on", "mode": "timeout", "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)), timeout=0.5)
    assert emulator.counters()["generationsCreated"] == 0


def test_timeout_released_by_reset(api: httpx.Client, emulator: Emulator) -> None:
    import threading

    emulator.control("POST", "faults", {"endpoint": "get_credits", "mode": "timeout"})
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(api.get("/account/credits", timeout=10).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)
    emulator.reset()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], httpx.TransportError)


def test_drop_fault_closes_without_processing(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    image_id = upload(api)["imageId"]
    emulator.control("POST", "faults", {"endpoint": "create_try_on", "mode": "drop", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)))
    counters = emulator.counters()
    assert counters["generationsCreated"] == 0
    assert counters["requests"]["create_try_on"] == 1
    assert api.get("/account/credits").json() == {"creditBalance": 1000}


def test_drop_after_processes_then_drops(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    image_id = upload(api)["imageId"]
    fault = {"endpoint": "create_try_on", "mode": "drop_after", "count": 1}
    assert emulator.control("POST", "faults", fault)["id"]
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)))
    counters = emulator.counters()
    assert counters["generationsCreated"] == 1
    assert counters["creditsSpent"] == 1
    assert counters["processed"]["create_try_on"] == 1
    assert api.get("/account/credits").json() == {"creditBalance": 999}
    # A 204 has no body to cut: the connection is closed before anything is sent.
    emulator.control("POST", "faults", {"endpoint": "delete_customer", "mode": "drop_after"})
    with pytest.raises(httpx.RemoteProtocolError):
        api.delete("/customers/u1")
    assert emulator.counters()["processed"]["delete_customer"] == 1


def test_control_api_validation(emulator: Emulator) -> None:
    r = httpx.post(f"{emulator.root}/_emulator/faults", json={"endpoint": "nope"})
    assert_error(r, 400, "VALIDATION_FAILED")
    r = httpx.post(f"{emulator.root}/_emulator/faults", json={"endpoint": "*", "rate": 2})
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "rate"
    r = httpx.post(f"{emulator.root}/_emulator/reset", json={"speed": 0})
    assert_error(r, 400, "VALIDATION_FAILED")
    r = httpx.post(f"{emulator.root}/_emulator/clock/advance", json={"seconds": 60})
    assert r.json()["now"].endswith("Z")


def test_retry_after_is_whole_seconds_at_speed_one(api: httpx.Client, emulator: Emulator) -> None:
    emulator.reset(speed=1, rateLimit=1)
    assert api.get("/account/credits").status_code == 200
    r = api.get("/account/credits")
    assert_error(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] in ("59", "60")
