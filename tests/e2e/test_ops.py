"""The ops API end to end: a real gateway and worker with OPS_ADMIN_TOKENS set.

Admin-only access, pausing intake (503 INTAKE_PAUSED) and processing (a try-on waits queued
while a worker is alive), live workers in the status, a failed try-on retried to completion
with exactly one generation upstream, and the `tryon-gateway ops` commands over HTTP (a dead
delivery listed and resent, a failed try-on listed, shown and discarded)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import (
    SECRET,
    Gateway,
    eventually,
    put_product,
    stack_fixture,
    start_tryon,
    upload_photo,
    wait_terminal,
)
from tests.e2e.receiver import Receiver, Reply

ADMIN = "ops_e2e_admin_token_0123456789abcdef"


gateway = stack_fixture(
    OPS_ADMIN_TOKENS=f"{ADMIN}=e2e",
    # Beats every second so the status sees workers (and their pause) quickly.
    WORKER_HEALTH_CHECK_INTERVAL="1",
    # A receiver on loopback, and webhook retries 1000x faster (5 s -> 5 ms).
    WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
    WEBHOOK_TIME_SCALE="1000",
)


@pytest.fixture
async def admin(gateway: Gateway, api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(ADMIN) as client:
        yield client


async def status(admin: httpx.AsyncClient) -> dict[str, Any]:
    r = await admin.get("/ops/api/status")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def ready_tryon(api: httpx.AsyncClient, emulator: Emulator) -> str:
    await put_product(api, emulator)
    return await upload_photo(api)


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {SECRET}", "Bearer pk_test_publishable_0123456789abcdef", "Bearer nope"],
    ids=["no key", "secret key", "publishable key", "unknown token"],
)
async def test_only_admin_tokens_open_the_ops_api(
    gateway: Gateway, redis: Redis, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        for method, path in [
            ("GET", "/ops/api/status"),
            ("POST", "/ops/api/pause"),
            ("POST", "/ops/api/tryons/to_x/retry"),
            ("GET", "/ops/api/deliveries?status=failed"),
        ]:
            r = await client.request(method, path, json={"what": "intake"})
            assert r.status_code in (401, 403), r.text
            assert r.json()["code"] == "ADMIN_TOKEN_REQUIRED"
            assert r.json()["status"] == r.status_code
    assert await redis.get("tryon:ops:pause:intake") is None


async def test_status_lists_live_workers(admin: httpx.AsyncClient, gateway: Gateway) -> None:
    async def workers_seen() -> bool:
        return len((await status(admin))["workers"]) >= 1

    await eventually(workers_seen)
    [worker] = (await status(admin))["workers"]
    assert worker["picking"] is True
    assert worker["version"]
    assert worker["queue"] == gateway.queue


async def test_paused_intake_answers_503_then_accepts_again(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await ready_tryon(api, emulator)
    body = {"products": [{"externalId": "tee"}], "person": {"image": {"source": {"id": image_id}}}}
    r = await admin.post("/ops/api/pause", json={"what": "intake", "reason": "e2e"})
    assert r.status_code == 200, r.text

    refused: list[httpx.Response] = []

    async def refused_now() -> bool:
        r = await api.post("/v1/try-ons", json=body)
        refused.append(r)
        return r.status_code == 503

    await eventually(refused_now, within=3.0)  # each gateway process rereads within 1 s
    last = refused[-1]
    assert last.json()["code"] == "INTAKE_PAUSED"
    assert int(last.headers["Retry-After"]) > 0

    r = await admin.post("/ops/api/resume", json={"what": "intake"})
    assert r.json()["wasPaused"] is True

    async def accepted_now() -> bool:
        return (await api.post("/v1/try-ons", json=body)).status_code == 202

    await eventually(accepted_now, within=3.0)


async def test_paused_processing_holds_new_tryons_until_resumed(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await ready_tryon(api, emulator)
    r = await admin.post("/ops/api/pause", json={"what": "processing"})
    assert r.status_code == 200, r.text

    async def all_workers_paused() -> bool:
        workers = (await status(admin))["workers"]
        return bool(workers) and not any(w["picking"] for w in workers)

    await eventually(all_workers_paused)
    tryon = await start_tryon(api, image_id)
    await asyncio.sleep(2.0)
    r = await api.get(f"/v1/try-ons/{tryon['id']}")
    assert r.json()["status"] == "queued"
    snap = await status(admin)
    assert snap["processingPause"]["by"] == "e2e"
    assert snap["queue"]["ready"] >= 1
    assert snap["queue"]["oldestReadyAgeSeconds"] >= 1.5
    assert len(snap["workers"]) >= 1  # the worker is alive, just not picking

    await admin.post("/ops/api/resume", json={"what": "processing"})
    done = await wait_terminal(api, tryon["id"])
    assert done["status"] == "completed", done


async def test_a_tryon_refused_upstream_is_retried_once_to_completion(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await ready_tryon(api, emulator)
    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 0})
    tryon = await start_tryon(api, image_id)
    failed = await wait_terminal(api, tryon["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "INSUFFICIENT_CREDITS"

    listed = (await admin.get("/ops/api/tryons", params={"status": "failed"})).json()
    [entry] = [t for t in listed if t["id"] == tryon["id"]]
    assert entry["retryable"] is True  # Genlook refused the create: no credit could be spent
    assert entry["error"]["code"] == "INSUFFICIENT_CREDITS"

    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 10})
    r = await admin.post(f"/ops/api/tryons/{tryon['id']}/retry")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    done = await wait_terminal(api, tryon["id"])
    assert done["status"] == "completed", done
    assert emulator.counters()["generationsCreated"] == 1

    # Now a generation exists: a second retry would spend a second credit and is refused.
    again = await admin.post(f"/ops/api/tryons/{tryon['id']}/retry")
    assert again.status_code == 409
    assert again.json()["code"] in ("TRYON_NOT_RETRYABLE", "RETRY_WOULD_SPEND_CREDIT")
    listed = (await admin.get("/ops/api/tryons", params={"status": "failed"})).json()
    assert tryon["id"] not in [t["id"] for t in listed]
    assert emulator.counters()["generationsCreated"] == 1


def ops_cli(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """`tryon-gateway ops ...` as a separate process against the gateway, with the token."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "ops", *args, "--url", gw.url],
        env={**gw.stack.env, "OPS_ADMIN_TOKEN": ADMIN},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_pause_and_resume_through_the_cli(gateway: Gateway, redis: Redis) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return ops_cli(gateway, *args)

    paused = cli("pause", "processing", "--reason", "cli test")
    assert paused.returncode == 0, paused.stderr
    assert "processing paused by e2e" in paused.stdout
    shown = cli("status")
    assert shown.returncode == 0, shown.stderr
    assert "processing  PAUSED by e2e" in shown.stdout
    assert "(cli test)" in shown.stdout
    assert cli("resume", "processing").returncode == 0
    assert cli("jobs").returncode == 0
    refused = cli("retry", "to_missing")
    assert refused.returncode == 1
    assert "TRYON_NOT_FOUND" in refused.stderr


async def test_a_dead_delivery_is_listed_and_resent_through_the_cli(
    gateway: Gateway, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return ops_cli(gateway, *args)

    receiver.reply = lambda r: Reply(500)
    r = await api.post("/v1/webhook-endpoints", json={"url": receiver.url})
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    assert (await api.post(f"/v1/webhook-endpoints/{endpoint}/test")).status_code == 202
    first = (await receiver.wait_for(1))[0]  # its retries follow within milliseconds
    delivery = first.headers["webhook-id"]
    # Disabled, the endpoint takes no more attempts: the delivery's next one fails it for good.
    await api.patch(f"/v1/webhook-endpoints/{endpoint}", json={"enabled": False})

    async def dead() -> bool:
        listed = cli("deliveries")
        assert listed.returncode == 0, listed.stderr
        return delivery in listed.stdout

    await eventually(dead, within=20.0, every=0.5)
    shown = cli("delivery", delivery)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "failed"

    receiver.reply = lambda r: Reply(200)
    await api.patch(f"/v1/webhook-endpoints/{endpoint}", json={"enabled": True})
    before = len(receiver.received)
    resent = cli("resend", delivery)
    assert resent.returncode == 0, resent.stderr
    assert f"{delivery}: pending, sent again with the same webhook-id" in resent.stdout

    async def delivered() -> bool:
        return delivery in {x.headers["webhook-id"] for x in receiver.received[before:]}

    await eventually(delivered, within=20.0)

    async def succeeded() -> bool:
        return bool(json.loads(cli("delivery", delivery).stdout)["status"] == "succeeded")

    await eventually(succeeded, within=10.0, every=0.5)
    assert delivery not in cli("deliveries").stdout
    missing = cli("resend", "msg_missing")
    assert missing.returncode == 1
    assert "404 DELIVERY_NOT_FOUND" in missing.stderr


async def test_a_failed_tryon_is_listed_shown_and_discarded_through_the_cli(
    gateway: Gateway, api: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await ready_tryon(api, emulator)
    emulator.control("PUT", f"accounts/{emulator.api_key}", json={"credits": 0})
    tryon = (await start_tryon(api, image_id))["id"]
    assert (await wait_terminal(api, tryon))["status"] == "failed"

    listed = ops_cli(gateway, "tryons")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(tryon)]
    assert "safe" in row
    assert "INSUFFICIENT_CREDITS" in row
    shown = ops_cli(gateway, "tryon", tryon)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["retryable"] is True
    discarded = ops_cli(gateway, "discard", tryon)
    assert discarded.returncode == 0, discarded.stderr
    assert f"{tryon}: dropped from the failed list" in discarded.stdout
    assert tryon not in ops_cli(gateway, "tryons").stdout
    missing = ops_cli(gateway, "tryon", "to_missing")
    assert missing.returncode == 1
    assert "404 TRYON_NOT_FOUND" in missing.stderr


async def test_usage_through_the_cli(
    gateway: Gateway, api: httpx.AsyncClient, emulator: Emulator
) -> None:
    image_id = await ready_tryon(api, emulator)
    tryon = (await start_tryon(api, image_id))["id"]
    assert (await wait_terminal(api, tryon))["status"] == "completed"

    by_app = ops_cli(gateway, "usage", "--group-by", "app")
    assert by_app.returncode == 0, by_app.stderr
    lines = by_app.stdout.splitlines()
    assert lines[1].split() == ["app", "accepted", "completed", "failed", "canceled", "credits"]
    assert lines[2].split() == ["shop", "1", "1", "0", "0", "1"]
    as_csv = ops_cli(gateway, "usage", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.splitlines()[0].startswith("day,account,app,userId,productId,")
    refused = ops_cli(gateway, "usage", "--group-by", "user")
    assert refused.returncode == 1
    assert "400 VALIDATION_FAILED" in refused.stderr
