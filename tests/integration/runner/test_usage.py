"""Usage figures and budget alerts, in process: the gateway app (Litestar's test client) accepts
and answers, the runner drives try-ons against the session's emulator over HTTP, Redis is real.

The figures are checked against the emulator's own counters after a mixed run (completed,
refused, canceled), over `GET /v1/usage` and `GET /ops/api/usage` (JSON and CSV); the erase
of a user reaches their figures; an alert fires once per crossing, re-arms after a top-up (the
emulator's control API sets the balance) or on the next day for caps, and reaches an app's
endpoint and the ops endpoint signed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from service.access.models import Policy
from service.namespacing import DEFAULT_ACCOUNT
from service.usage.counting import utc_date
from service.webhooks.signing import generate_secret
from standardwebhooks import Webhook
from workers.jobs import refresh_credits
from workers.webhooks import Dispatcher, make_deliverer

from tests.e2e.receiver import Receiver
from tests.integration.runner.conftest import APP, Harness, error_code

ADMIN = "usage-admin-token-0123456789abcdef"
OPS_SECRET = generate_secret()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    await started.stop()


@pytest.fixture
def harness_env(receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    return {
        "RESULTS_STORE_URL": str(tmp_path / "results"),
        "OPS_ADMIN_TOKENS": f"{ADMIN}=ops",
        "ALERTS_OPS_URL": f"{receiver.url}/ops-alerts",
        "ALERTS_OPS_SECRET": OPS_SECRET,
        "WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
        # An app of the environment's keys, not in the registry: it spends the account too.
        "GATEWAY_SECRET_KEYS": "sk_usage_static_app_key_0123456789=static",
    }


async def _mixed_run(h: Harness) -> dict[str, str]:
    """Three completed (two users, two products), one refused by Genlook (nothing spent), one
    canceled, one without a user. Returns the try-on ids by what became of them."""
    await h.put_product("tee")
    await h.put_product("dress", image="red-tee.png", title="Dress")
    photo_u1 = await h.upload_photo(externalUserId="u1")
    photo_u2 = await h.upload_photo(externalUserId="u2")
    photo_anon = await h.upload_photo()
    ids = {
        "u1-tee": await h.accept(photo_u1, externalUserId="u1"),
        "u1-dress": await h.accept(photo_u1, {"externalId": "dress"}, externalUserId="u1"),
        "u2-tee": await h.accept(photo_u2, externalUserId="u2"),
        "anon-tee": await h.accept(photo_anon),
        "u2-refused": await h.accept(photo_u2, {"externalId": "dress"}, externalUserId="u2"),
        "u1-canceled": await h.accept(photo_u1, externalUserId="u1"),
    }
    assert (await h.gateway.delete(f"/v1/try-ons/{ids['u1-canceled']}")).status_code == 200
    for name in ("u1-tee", "u1-dress", "u2-tee", "anon-tee"):
        assert (await h.drive(ids[name])).status == "completed"
    h.fault(status=402, code="INSUFFICIENT_CREDITS", count=1)
    assert error_code(await h.drive(ids["u2-refused"])) == "INSUFFICIENT_CREDITS"
    return ids


def _figures(row: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (row["accepted"], row["completed"], row["failed"], row["canceled"], row["credits"])


async def test_usage_equals_the_emulators_counters_after_a_mixed_run(harness: Harness) -> None:
    await _mixed_run(harness)
    counters = harness.counters()
    spent = counters["creditsSpent"] - counters["creditsRefunded"]
    assert counters["generationsCreated"] == spent == 4

    r = await harness.gateway.get("/v1/usage")
    assert r.status_code == 200, r.text
    report = r.json()
    today = utc_date(time.time())
    assert (report["to"], report["groupBy"]) == (today, "day")
    assert report["from"] < today  # the last seven days by default
    assert _figures(report["total"]) == (6, 4, 1, 1, spent)
    assert [row["day"] for row in report["rows"]] == [today]
    assert _figures(report["rows"][0]) == (6, 4, 1, 1, spent)

    by_user = (await harness.gateway.get("/v1/usage", params={"groupBy": "user"})).json()
    users = {row.get("userId"): _figures(row) for row in by_user["rows"]}
    assert users == {"u1": (3, 2, 0, 1, 2), "u2": (2, 1, 1, 0, 1), None: (1, 1, 0, 0, 1)}

    by_product = (await harness.gateway.get("/v1/usage", params={"groupBy": "product"})).json()
    products = {row["productId"]: _figures(row) for row in by_product["rows"]}
    assert products == {"tee": (4, 3, 0, 1, 3), "dress": (2, 1, 1, 0, 1)}

    # The ops API: every app and account, the same figures; and as CSV.
    admin = {"Authorization": f"Bearer {ADMIN}"}
    ops = (await harness.gateway.get("/ops/api/usage", headers=admin)).json()
    account = DEFAULT_ACCOUNT  # the account the try-ons were created on
    assert [(row["day"], row["account"], row["app"]) for row in ops["rows"]] == [
        (today, account, APP)
    ]
    assert _figures(ops["total"]) == (6, 4, 1, 1, spent)
    r = await harness.gateway.get(
        "/ops/api/usage", params={"format": "csv", "groupBy": "user", "app": APP}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["userId"]: int(row["credits"]) for row in rows} == {"": 1, "u1": 2, "u2": 1}
    assert set(rows[0]) == {
        "day", "account", "app", "userId", "productId",
        "accepted", "completed", "failed", "canceled", "credits",
    }  # fmt: skip

    # The metrics count the credits by the same rule.
    metrics = await harness.res.redis.hget(harness.res.keys.metrics, "credits_spent")
    assert float(metrics) == spent


async def test_an_unknown_outcome_counts_as_spent_in_usage_and_metrics(harness: Harness) -> None:
    """One rule for both: Genlook may have charged a create whose answer was lost."""
    tryon_id = await harness.tryon(externalUserId="u1")
    harness.fault(status=500, code="INTERNAL_ERROR")
    assert error_code(await harness.drive(tryon_id)) == "UPSTREAM_OUTCOME_UNKNOWN"

    total = (await harness.gateway.get("/v1/usage")).json()["total"]
    assert _figures(total) == (1, 0, 1, 0, 1)
    metrics = await harness.res.redis.hget(harness.res.keys.metrics, "credits_spent")
    assert float(metrics) == 1


async def test_a_retried_failure_that_completes_counts_once_as_completed(
    harness: Harness,
) -> None:
    """An ops retry reopens a failed try-on: its earlier failure is taken back from the usage
    figures and the finished metric, so one try-on ends once, as its last outcome."""
    tryon_id = await harness.tryon(externalUserId="u1")
    harness.fault(status=422, code="INVALID_REQUEST", count=1)
    assert error_code(await harness.drive(tryon_id)) == "INVALID_REQUEST"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = await harness.gateway.post(f"/ops/api/tryons/{tryon_id}/retry", headers=admin)
    assert r.status_code == 202, r.text
    assert (await harness.drive(tryon_id)).status == "completed"

    total = (await harness.gateway.get("/v1/usage")).json()["total"]
    assert _figures(total) == (1, 1, 0, 0, 1)
    by_user = (await harness.gateway.get("/v1/usage", params={"groupBy": "user"})).json()
    assert [_figures(row) for row in by_user["rows"]] == [(1, 1, 0, 0, 1)]
    finished = await harness.res.redis.hgetall(harness.res.keys.metrics)  # type: ignore[misc]
    counts = {k.decode(): float(v) for k, v in finished.items() if b"tryon_finished" in k}
    assert {k: v for k, v in counts.items() if v} == {"tryon_finished|status=completed": 1.0}


async def test_bad_spans_and_groupings_are_refused(harness: Harness) -> None:
    for params in (
        {"from": "2026-13-01"},
        {"from": "2026-02-02", "to": "2026-02-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
        {"groupBy": "account"},
    ):
        r = await harness.gateway.get("/v1/usage", params=params)
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_FAILED"), params
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = await harness.gateway.get("/ops/api/usage", params={"groupBy": "user"}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_FAILED")
    # An app's key never reads the ops report.
    assert (await harness.gateway.get("/ops/api/usage")).status_code in (401, 403)


async def test_an_erase_removes_the_users_usage(harness: Harness) -> None:
    await _mixed_run(harness)
    assert (await harness.gateway.delete("/v1/customers/u1")).status_code == 204

    by_user = (await harness.gateway.get("/v1/usage", params={"groupBy": "user"})).json()
    assert {row.get("userId") for row in by_user["rows"]} == {"u2", None}
    # Nothing in the usage hashes names u1 any more; the app's totals keep their count.
    redis = harness.res.redis
    async for key in redis.scan_iter(match=f"{harness.res.keys.prefix}usage:*"):
        fields = await redis.hkeys(key)
        assert not [f for f in fields if f.endswith(b":u1")], key
    total = (await harness.gateway.get("/v1/usage")).json()["total"]
    assert total["accepted"] == 6


async def _set_balance(h: Harness, credits: int) -> None:
    await asyncio.to_thread(
        h.emulator.control, "PUT", f"accounts/{h.emulator.api_key}", {"credits": credits}
    )
    # The fleet reads the balance once a minute; a test reads it now.
    await h.res.redis.delete(h.res.keys.credits_balance + ":lock")
    await refresh_credits(h.res)


async def _alert_entries(h: Harness) -> list[dict[str, str]]:
    entries = await h.res.redis.xrange(h.res.keys.outbox)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def _thresholds(entries: list[dict[str, str]], event_type: str) -> list[int]:
    """The thresholds (or cap percents) of the ops copies of alerts of this type, in order."""
    out = []
    for e in entries:
        if e["type"] == event_type and e.get("ops"):
            data = msgspec.json.decode(e["body"])["data"]
            out.append(data.get("threshold", data.get("percent")))
    return out


async def test_a_balance_alert_fires_once_per_crossing_and_rearms_after_a_top_up(
    harness: Harness,
) -> None:
    # ALERTS_BALANCE_THRESHOLDS defaults to 500,100,0.
    for credits in (1500, 500, 400, 50, 40, 5000, 450, 300):
        await _set_balance(harness, credits)
    entries = await _alert_entries(harness)
    # 500 reaches 500; 50 crosses 100; the top-up to 5000 re-arms both; 450 crosses 500 again.
    assert _thresholds(entries, "account.balance_low") == [500, 100, 500]
    # Each alert also went to every app's endpoints (the dispatcher finds whoever subscribes),
    # the environment's apps included.
    assert [e["app"] for e in entries if e["type"] == "account.balance_low"] == [
        APP, "static", "", APP, "static", "", APP, "static", "",
    ]  # fmt: skip
    assert await harness.res.alerts.firing() == [f"balance:{DEFAULT_ACCOUNT}:500"]


async def test_a_daily_cap_alert_fires_once_per_share_and_again_the_next_day(
    harness: Harness,
) -> None:
    await harness.res.apps.set_policy(APP, Policy(daily_credit_cap=5))
    await harness.put_product()
    photo = await harness.upload_photo()
    now = time.time()
    for _ in range(4):
        await harness.accept(photo)
        await harness.res.alerts.check_daily_caps(now)
    await harness.res.alerts.check_daily_caps(now)
    await harness.accept(photo)
    await harness.res.alerts.check_daily_caps(now)
    assert _thresholds(await _alert_entries(harness), "app.daily_cap_near") == [80, 100]

    # The next day starts armed: 4 of 5 again fires the 80 % alert once more.
    tomorrow = now + 86_400
    await harness.res.redis.set(harness.res.quotas.daily_cap(APP, 5, tomorrow).key, 4)
    await harness.res.alerts.check_daily_caps(tomorrow)
    await harness.res.alerts.check_daily_caps(tomorrow)
    assert _thresholds(await _alert_entries(harness), "app.daily_cap_near") == [80, 100, 80]
    assert await harness.res.alerts.firing() == [f"cap:{APP}:{utc_date(tomorrow)}:80"]


async def test_an_alert_reaches_the_apps_endpoint_and_the_ops_endpoint_signed(
    harness: Harness, receiver: Receiver
) -> None:
    alerts = ["account.balance_low", "app.daily_cap_near"]
    r = await harness.gateway.post(
        "/v1/webhook-endpoints", json={"url": f"{receiver.url}/app", "eventTypes": alerts}
    )
    assert r.status_code == 201, r.text
    app_secret = r.json()["secret"]
    # An endpoint with the default subscription is not sent alerts: they are not try-on events.
    r = await harness.gateway.post("/v1/webhook-endpoints", json={"url": f"{receiver.url}/plain"})
    assert r.status_code == 201, r.text
    deliverer, client = make_deliverer(harness.res)
    dispatcher = Dispatcher(harness.res, deliverer, harness.res.redis, name="test")
    task = asyncio.create_task(dispatcher.run())
    try:
        await _set_balance(harness, 50)  # under 500 and 100: two alerts, each to both
        received = await receiver.wait_for(4)
        await asyncio.sleep(0.5)  # nothing more comes (to /plain)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
    by_path: dict[str, list[int]] = {}
    for got in received:
        secret = app_secret if got.path == "/app" else OPS_SECRET
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "account.balance_low"
        assert event["data"]["balance"] == 50
        by_path.setdefault(got.path, []).append(event["data"]["threshold"])
    assert {path: sorted(t) for path, t in by_path.items()} == {
        "/app": [100, 500],
        "/ops-alerts": [100, 500],
    }
