"""Structured logs: JSON lines, one per request and job stage, the trace carried from the
request into the job and the webhook attempt, and no secrets."""

from __future__ import annotations

import json
import pathlib

from redis.asyncio import Redis

from tests.conftest import EMULATOR_KEY, Emulator
from tests.e2e.conftest import SECRET, put_product, start_gateway, upload_photo, wait_terminal
from tests.e2e.receiver import Receiver


def lines(path: pathlib.Path) -> list[dict[str, object]]:
    out = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{"):
            out.append(json.loads(raw))
    return out


async def test_one_trace_from_request_to_job_to_webhook(
    emulator: Emulator, redis: Redis, tmp_path: pathlib.Path
) -> None:
    receiver = await Receiver().start()
    gw = start_gateway(emulator, log_dir=str(tmp_path), WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        async with gw.client() as api:
            await api.post("/v1/webhook-endpoints", json={"url": receiver.url})
            await put_product(api, emulator)
            image_id = await upload_photo(api)
            r = await api.post(
                "/v1/try-ons",
                json={"products": [{"externalId": "tee"}],
                      "person": {"image": {"source": {"id": image_id}}}},
                headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01",
                         "x-request-id": "req-123"},
            )  # fmt: skip
            assert r.headers["x-request-id"] == "req-123"
            tryon_id = r.json()["id"]
            await wait_terminal(api, tryon_id)
            (hook,) = await receiver.wait_for(1)
            assert hook.headers["traceparent"].split("-")[1] == trace
    finally:
        gw.stack.stop_all()
        await receiver.stop()
    gateway = lines(tmp_path / "gateway.log")
    worker = lines(tmp_path / "worker0.log")
    accepted = [g for g in gateway if g.get("requestId") == "req-123"]
    assert accepted, gateway[-5:]
    assert accepted[0]["traceId"] == trace
    assert accepted[0]["route"] == "/v1/try-ons"
    assert accepted[0]["status"] == 202
    assert accepted[0]["app"] == "shop"
    traced = [w for w in worker if w.get("traceId") == trace]
    assert any(w.get("tryonId") == tryon_id for w in traced)
    assert any(w.get("msg") == "webhook.attempt" for w in traced)
    everything = (tmp_path / "gateway.log").read_text() + (tmp_path / "worker0.log").read_text()
    for secret in (EMULATOR_KEY, SECRET):
        assert secret not in everything
