"""The documented receiver (docs/examples/webhook_receiver.py) against real deliveries."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from service.devstack import free_port, wait_http

from tests.conftest import Emulator
from tests.e2e.test_webhooks import gateway, settled, tryon  # noqa: F401 - the module's stack

pytestmark = pytest.mark.usefixtures("redis")


async def test_the_documented_receiver_verifies_and_dedupes(
    api: httpx.AsyncClient, emulator: Emulator
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks"
    endpoint = (await api.post("/v1/webhook-endpoints", json={"url": url})).json()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the awaited work
        [sys.executable, "-m", "uvicorn", "docs.examples.webhook_receiver:app",
         "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "WEBHOOK_SECRET": endpoint["secret"]},
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc)
        tryon_id = await tryon(api, emulator)
        async with httpx.AsyncClient() as plain:
            processed: list[dict[str, object]] = []
            for _ in range(100):
                processed = (await plain.get(url)).json()
                if processed:
                    break
                await asyncio.sleep(0.05)
            assert [e["data"]["id"] for e in processed] == [tryon_id]  # type: ignore[index]
            # a resend carries the same webhook-id: acknowledged, not processed twice
            # once the first attempt is recorded: a resend meanwhile would be overwritten by it
            deliveries = await settled(api, f"/v1/try-ons/{tryon_id}/deliveries")
            r = await api.post(
                f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{deliveries[0]['id']}/resend"
            )
            assert r.status_code == 202
            for _ in range(50):
                attempts = (await api.get(f"/v1/try-ons/{tryon_id}/deliveries")).json()
                if len(attempts[0]["attempts"]) == 2 and attempts[0]["status"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            assert attempts[0]["attempts"][1]["response"] == "duplicate"
            assert len((await plain.get(url)).json()) == 1
            # forged, tampered and garbled requests are refused with 400, never a 500
            good = {"webhook-id": "msg_x", "webhook-timestamp": "1", "content-type": "text/plain"}
            for signature in ["v1,AAAA", "garbage-without-comma", "v1,not base64!!", ""]:
                r = await plain.post(url, content=b'{"a":1}',
                                     headers={**good, "webhook-signature": signature})  # fmt: skip
                assert r.status_code == 400, signature
    finally:
        proc.terminate()
        proc.wait(timeout=10)
