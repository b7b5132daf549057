"""A backend receiving tryon-gateway webhooks: verify, dedupe, answer fast.

Run: WEBHOOK_SECRET=whsec_... uvicorn docs.examples.webhook_receiver:app --port 9000
(tests/e2e/test_webhook_receiver.py runs exactly this file against the real gateway).

The rules that matter:
- verify the signature over the RAW body (bytes as received, before any JSON parsing), with
  the `standardwebhooks` library, and catch its malformed-header errors: it raises `ValueError`
  (or its subclass `binascii.Error`) for a garbled `webhook-signature`, not only
  `WebhookVerificationError`;
- the library also rejects timestamps more than 5 minutes away (replays);
- dedupe on `webhook-id`: retries, resends and recoveries reuse it, delivery is at least once;
- answer 2xx quickly and do the work afterwards; anything else is retried.
"""

from __future__ import annotations

import binascii
import json
import os
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

verifier = Webhook(os.environ["WEBHOOK_SECRET"])  # the endpoint's secret, shown at registration
# A real backend keeps this in its database (a unique key on webhook-id), with a TTL of a few
# days: the gateway retries for about three.
seen: set[str] = set()
processed: list[dict[str, Any]] = []


def handle(body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        event = verifier.verify(body, headers)
    except (WebhookVerificationError, ValueError, binascii.Error):
        return 400, b"bad signature"
    webhook_id = headers["webhook-id"]
    if webhook_id in seen:
        return 200, b"duplicate"
    seen.add(webhook_id)
    processed.append(event)  # hand the event to your own queue here
    return 200, b"ok"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app, so the example needs nothing but the verifier."""
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # the tests read what was processed
        status, body = 200, json.dumps(processed).encode()
    else:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, body = handle(b"".join(chunks), headers)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
