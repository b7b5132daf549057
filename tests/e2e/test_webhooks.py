"""Webhooks end to end: real receivers on loopback, the gateway and workers as processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook

from tests.conftest import Emulator
from tests.e2e.conftest import (
    Gateway,
    eventually,
    put_product,
    stack_fixture,
    tryon_doc,
    upload_photo,
    wait_terminal,
)
from tests.e2e.receiver import Received, Receiver, Reply

# Three days of retries in ~4 minutes: 5 s -> 5 ms, 2 h -> 7.2 s.
SCALE = 1000.0


gateway = stack_fixture(
    WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
    WEBHOOK_TIME_SCALE=str(SCALE),
    WEBHOOK_ATTEMPT_TIMEOUT="2",
)


async def register(api: httpx.AsyncClient, url: str, **extra: Any) -> dict[str, Any]:
    r = await api.post("/v1/webhook-endpoints", json={"url": url, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def settled(api: httpx.AsyncClient, path: str, within: float = 5.0) -> list[dict[str, Any]]:
    """The deliveries listed at `path` once none is pending: a receiver has the request before
    the worker has read its answer and recorded the attempt."""
    listed: list[dict[str, Any]] = []

    async def recorded() -> bool:
        nonlocal listed
        listed = (await api.get(path)).json()
        return bool(listed) and all(d["status"] != "pending" for d in listed)

    await eventually(recorded, within=within, what=f"deliveries at {path} still pending")
    return listed


async def tryon(api: httpx.AsyncClient, emulator: Emulator, **extra: Any) -> str:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    r = await api.post(
        "/v1/try-ons",
        json={"products": [{"externalId": "tee"}],
              "person": {"image": {"source": {"id": image_id}}}, **extra},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    tryon_id: str = r.json()["id"]
    return tryon_id


def verify(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_completed_event_is_signed_and_verifiable(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    endpoint = await register(api, receiver.url + "/hooks", description="merchant")
    assert endpoint["secret"].startswith("whsec_")
    assert "secret" not in (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    tryon_id = await tryon(api, emulator, metadata={"order": "o-1"})
    (request,) = await receiver.wait_for(1)
    event = verify(endpoint["secret"], request)
    assert event["type"] == "tryon.completed"
    assert event["data"]["id"] == tryon_id
    assert event["data"]["metadata"] == {"order": "o-1"}
    assert event["data"]["result"]["imageUrl"].startswith("http")
    assert request.path == "/hooks"
    assert request.headers["webhook-id"].startswith("msg_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    # the try-on lists its deliveries, with the attempt
    (delivery,) = await settled(api, f"/v1/try-ons/{tryon_id}/deliveries")
    assert delivery["id"] == request.headers["webhook-id"]
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"][0]["status"] == 200


async def test_first_attempt_follows_completion_within_a_second(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver, redis: Redis
) -> None:
    await register(api, receiver.url)
    tryon_id = await tryon(api, emulator)
    (request,) = await receiver.wait_for(1)
    completed_at = (await tryon_doc(redis, tryon_id))["completed_at"]
    assert 0 <= request.at - completed_at < 1.0


async def test_per_request_callback_url_signed_with_the_app_secret(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    secret = (await api.get("/v1/callback-secret")).json()["secret"]
    tryon_id = await tryon(api, emulator, callbackUrl=receiver.url + "/cb")
    (request,) = await receiver.wait_for(1)
    event = verify(secret, request)
    assert event["data"]["id"] == tryon_id
    assert request.path == "/cb"
    # A callback URL lists no eventTypes: the default subscription, one terminal event, never
    # tryon.processing (whose delivery, if any, is recorded before the terminal one's).
    assert event["type"] == "tryon.completed"
    deliveries = (await api.get(f"/v1/try-ons/{tryon_id}/deliveries")).json()
    assert [d["eventType"] for d in deliveries] == ["tryon.completed"]


async def test_rotation_signs_with_both_secrets_during_overlap(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    endpoint = await register(api, receiver.url)
    rotated = (
        await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
                       json={"overlapSeconds": 3600})
    ).json()  # fmt: skip
    assert rotated["secret"] != endpoint["secret"]
    await tryon(api, emulator)
    (request,) = await receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(endpoint["secret"], request)
    verify(rotated["secret"], request)
    # overlap 0: the old secret stops at once
    again = (
        await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
                       json={"overlapSeconds": 0})
    ).json()  # fmt: skip
    await tryon(api, emulator)
    second = (await receiver.wait_for(2))[1]
    # every earlier secret stopped at once: one signature, by the newest secret only
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    verify(again["secret"], second)
    for old in (endpoint["secret"], rotated["secret"]):
        with pytest.raises(Exception, match="No matching signature"):
            verify(old, second)


async def test_retries_follow_the_schedule_and_keep_the_webhook_id(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    receiver.reply = lambda r: Reply(500) if len(receiver.received) <= 3 else Reply(200)
    endpoint = await register(api, receiver.url)
    await tryon(api, emulator)
    requests = await receiver.wait_for(4)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    attempts = await settled(api, f"/v1/webhook-endpoints/{endpoint['id']}/attempts")
    statuses = [a["status"] for a in attempts[0]["attempts"]]
    assert statuses == [500, 500, 500, 200]
    # Scheduled 5 s, 5 min, 30 min (/1000, ±10 % jitter): exactly, as recorded; as received,
    # never early, and late by no more than a loaded machine's pickup (the next step is 7.2 s).
    failed = attempts[0]["attempts"][:3]
    for attempt, gap, expected in zip(failed, gaps, [0.005, 0.3, 1.8], strict=True):
        # scheduled from the attempt's end (`at` is its start)
        scheduled = attempt["nextAttemptAt"] - attempt["at"] - attempt["durationMs"] / 1000
        assert expected * 0.9 <= scheduled <= expected * 1.1 + 0.05, attempt
        assert expected * 0.85 <= gap <= expected * 1.1 + 1.0, gaps
    assert attempts[0]["attempts"][0]["nextAttemptAt"] > attempts[0]["attempts"][0]["at"]


async def test_a_timed_out_attempt_is_retried(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    # The attempt timeout is 2 s in this stack; the first answer takes 3.
    receiver.reply = lambda r: Reply(delay=3.0) if len(receiver.received) == 1 else Reply()
    endpoint = await register(api, receiver.url)
    await tryon(api, emulator)
    first, second = await receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert 1.9 <= second.at - first.at <= 3.0
    attempts = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json()
    for _ in range(50):
        attempts = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json()
        if attempts[0]["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert "timeout" in attempts[0]["attempts"][0]["error"]
    assert attempts[0]["attempts"][1]["status"] == 200


async def test_retry_after_is_honoured(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    receiver.reply = lambda r: (
        Reply(429, headers={"retry-after": "2"}) if len(receiver.received) == 1 else Reply()
    )
    await register(api, receiver.url)
    await tryon(api, emulator)
    first, second = await receiver.wait_for(2)
    assert second.at - first.at >= 1.9


async def test_gone_disables_the_endpoint(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    receiver.reply = lambda r: Reply(410)
    endpoint = await register(api, receiver.url)
    await tryon(api, emulator)
    await receiver.wait_for(1)
    for _ in range(50):
        state = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
        if not state["enabled"]:
            break
        await asyncio.sleep(0.1)
    assert state["enabled"] is False
    assert "410" in state["disabledReason"]
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1


async def test_redirects_are_not_followed(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    target = await Receiver().start()
    try:
        receiver.reply = lambda r: Reply(302, headers={"location": target.url + "/x"})
        endpoint = await register(api, receiver.url)
        await tryon(api, emulator)
        await receiver.wait_for(1)
        await asyncio.sleep(0.3)
        assert target.received == []
        attempts = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json()
        assert "redirect" in attempts[0]["attempts"][0]["error"]
    finally:
        await target.stop()


async def test_events_of_a_tryon_arrive_in_order_while_an_earlier_one_retries(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    def reply(r: Received) -> Reply:
        kind = json.loads(r.body)["type"]
        tries = sum(1 for x in receiver.received if json.loads(x.body)["type"] == kind)
        return Reply(500) if kind == "tryon.processing" and tries <= 3 else Reply()

    receiver.reply = reply
    await register(api, receiver.url, eventTypes=["tryon.processing", "tryon.completed"])
    await tryon(api, emulator)
    requests = await receiver.wait_for(5)
    kinds = [json.loads(r.body)["type"] for r in requests]
    assert kinds == ["tryon.processing"] * 4 + ["tryon.completed"]


async def test_a_slow_receiver_does_not_delay_a_fast_one(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver, redis: Redis
) -> None:
    slow = await Receiver(reply=lambda r: Reply(delay=1.5)).start()
    try:
        await register(api, slow.url)
        await register(api, receiver.url)
        ids = [await tryon(api, emulator) for _ in range(3)]
        await receiver.wait_for(3)
        await slow.wait_for(3)
        assert {json.loads(r.body)["data"]["id"] for r in receiver.received} == set(ids)
        # Each try-on reached the fast receiver within a second of its completion, though the
        # slow one takes 1.5 s an answer (measured per try-on: their completions may spread).
        for request in receiver.received:
            record = await tryon_doc(redis, json.loads(request.body)["data"]["id"])
            assert 0 <= request.at - record["completed_at"] < 1.0
    finally:
        await slow.stop()


async def test_resend_and_recover_keep_the_webhook_id(
    api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    receiver.reply = lambda r: Reply(500)
    endpoint = await register(api, receiver.url)
    await tryon(api, emulator)
    await tryon(api, emulator)
    attempts = f"/v1/webhook-endpoints/{endpoint['id']}/attempts"
    # Two deliveries attempted (two received requests may be one delivery and its retry). Their
    # ids come from the gateway: a late retry of an earlier test's delivery may reach this
    # receiver if the kernel gave it the same port.
    for _ in range(200):
        original = {d["id"] for d in (await api.get(attempts)).json()}
        if len(original) == 2 and original <= {r.headers["webhook-id"] for r in receiver.received}:
            break
        await asyncio.sleep(0.1)
    assert len(original) == 2
    # Still pending (retrying): mark them failed by disabling, then recover everything that
    # failed since before the try-ons (it re-enables and resends).
    await api.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False})
    # Each ends failed at its next scheduled attempt (a slow machine may need a while).
    deliveries = await settled(api, attempts, within=30)
    assert [d["status"] for d in deliveries] == ["failed", "failed"]
    # Only now does the receiver accept: a retry due while the disable was on its way would
    # otherwise succeed and leave nothing to recover (it did once in CI, both deliveries).
    receiver.reply = lambda r: Reply(200)
    r = await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/recover",
                       json={"since": time.time() - 60})  # fmt: skip
    assert r.status_code == 202
    assert set(r.json()["resent"]) == original
    # (recover has made them pending again before answering)
    deliveries = await settled(api, attempts, within=10)
    assert all(d["status"] == "succeeded" for d in deliveries)
    assert {d["id"] for d in deliveries} == original
    assert original <= {x.headers["webhook-id"] for x in receiver.received}
    one = deliveries[0]["id"]
    before = len(receiver.received)
    r = await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{one}/resend")
    assert r.status_code == 202
    for _ in range(50):
        if one in {x.headers["webhook-id"] for x in receiver.received[before:]}:
            break
        await asyncio.sleep(0.1)
    assert one in {x.headers["webhook-id"] for x in receiver.received[before:]}


async def test_test_event_and_registration_errors(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await register(api, receiver.url)
    r = await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    assert r.status_code == 202
    (request,) = await receiver.wait_for(1)
    assert verify(endpoint["secret"], request)["type"] == "webhook.test"
    assert (await api.get("/v1/webhook-endpoints/we_nope")).status_code == 404
    listing = (await api.get("/v1/webhook-endpoints")).json()
    assert [e["id"] for e in listing["items"]] == [endpoint["id"]]
    schedule = (await api.get("/v1/webhook-endpoints/schedule")).json()
    assert schedule["maxAttempts"] == 10


BLOCKED = [
    "http://10.0.0.5/x",
    "https://10.0.0.5/x",
    "https://192.168.1.1/x",
    "https://172.16.0.1/x",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/x",
    "https://224.0.0.1/x",
    "https://240.0.0.1/x",
    "https://0.0.0.0/x",
    "https://[::1]/x",
    "https://[fc00::1]/x",
    "https://[fe80::1]/x",
    "https://[::ffff:10.0.0.5]/x",
    "https://localhost/x",
    "http://example.com/x",
    "ftp://example.com/x",
]


@pytest.mark.parametrize("url", BLOCKED)
async def test_ssrf_refused_at_registration(api: httpx.AsyncClient, url: str) -> None:
    r = await api.post("/v1/webhook-endpoints", json={"url": url})
    assert r.status_code == 400, r.text
    assert r.json()["code"] in ("CALLBACK_URL_FORBIDDEN", "CALLBACK_URL_INVALID")
    r = await api.post("/v1/try-ons", json={
        "products": [{"externalId": "x"}], "person": {"image": {"source": {"id": "i"}}},
        "callbackUrl": url})  # fmt: skip
    assert r.status_code == 400, r.text


async def test_a_worker_killed_mid_delivery_loses_nothing(
    gateway: Gateway, api: httpx.AsyncClient, emulator: Emulator, receiver: Receiver
) -> None:
    # The first attempt hangs past the worker's death; the next one, from a new worker, lands.
    receiver.reply = lambda r: Reply(delay=5.0) if len(receiver.received) == 1 else Reply()
    await register(api, receiver.url)
    tryon_id = await tryon(api, emulator)
    await receiver.wait_for(1)
    gateway.stack.stop("worker0", signal.SIGKILL)
    gateway.add_worker("worker0")
    requests = await receiver.wait_for(2, within=60)
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
    assert json.loads(requests[1].body)["data"]["id"] == tryon_id


async def test_a_receiver_down_for_an_hour_gets_everything(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    # An hour at this scale is 3.6 s; the receiver's port refuses connections meanwhile.
    down = await Receiver().start()
    port = down.port
    await down.stop()
    endpoint = await register(api, f"http://127.0.0.1:{port}")
    ids = [await tryon(api, emulator) for _ in range(3)]
    for t in ids:
        await wait_terminal(api, t)
    await asyncio.sleep(3.6)
    back = await Receiver(port=port).start()
    try:
        requests = await back.wait_for(3, within=30)
        assert {json.loads(r.body)["data"]["id"] for r in requests} == set(ids)
        attempts = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json()
        assert {d["id"] for d in attempts} == {r.headers["webhook-id"] for r in requests}
        assert all(len(d["attempts"]) > 1 for d in attempts)
    finally:
        await back.stop()
