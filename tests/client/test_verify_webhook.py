"""`verify_webhook()` against deliveries signed by the gateway's own signing code: one accepted
event of each kind, and one failure per test for what a receiver must refuse (Svix style).
That a real delivery verifies is tests/e2e/test_python_client.py's job."""

from __future__ import annotations

import time

import msgspec
import pytest
from service.tryons.models import TryOnOut
from service.webhooks.events import TEST_EVENT, event_body
from service.webhooks.signing import generate_secret, headers

from tryon_client import (
    InvalidWebhook,
    TryOnCompleted,
    TryonError,
    UnknownEvent,
    WebhookTest,
    verify_webhook,
)

SECRET = generate_secret()
TRYON = TryOnOut(
    id="tr_1", status="completed", created_at="2026-01-01T00:00:00.000Z",
    updated_at="2026-01-01T00:00:01.000Z",
)  # fmt: skip
BODY = event_body("tryon.completed", TRYON)


def signed(body: bytes = BODY, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    return headers("msg_1", int(time.time() if at is None else at), body, [secret])


def test_a_signed_completion_is_a_typed_event() -> None:
    event = verify_webhook(BODY, signed(), SECRET)
    assert isinstance(event, TryOnCompleted)
    assert event.type == "tryon.completed"
    assert event.data.id == "tr_1"
    assert event.data.status == "completed"


def test_header_names_are_matched_in_any_case_and_the_body_may_be_text() -> None:
    upper = {k.upper(): v for k, v in signed().items()}
    assert isinstance(verify_webhook(BODY.decode(), upper, SECRET), TryOnCompleted)


def test_the_test_event_and_an_unknown_type_decode() -> None:
    test_body = event_body(TEST_EVENT, {"endpointId": "we_1"})
    event = verify_webhook(test_body, signed(test_body), SECRET)
    assert isinstance(event, WebhookTest)
    assert event.data.endpoint_id == "we_1"
    future = msgspec.json.encode({"type": "tryon.archived", "timestamp": "t", "data": {}})
    assert isinstance(verify_webhook(future, signed(future), SECRET), UnknownEvent)


def test_a_signature_made_with_another_secret_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="No matching signature"):
        verify_webhook(BODY, signed(secret=generate_secret()), SECRET)


def test_a_changed_body_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="No matching signature"):
        verify_webhook(BODY.replace(b"tr_1", b"tr_2"), signed(), SECRET)


def test_an_old_timestamp_is_refused() -> None:
    with pytest.raises(InvalidWebhook, match="too old"):
        verify_webhook(BODY, signed(at=time.time() - 600), SECRET)


def test_a_malformed_signature_header_is_refused_as_the_typed_error() -> None:
    # The library itself raises ValueError / binascii.Error for these (design.md's trap).
    for bad in ("garbage", "v1,not*base64", "v1,a,b"):
        with pytest.raises(InvalidWebhook) as caught:
            verify_webhook(BODY, {**signed(), "webhook-signature": bad}, SECRET)
        assert isinstance(caught.value, TryonError)


def test_a_missing_header_is_refused() -> None:
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {k: v for k, v in signed().items() if k != name}
        with pytest.raises(InvalidWebhook, match="Missing required headers"):
            verify_webhook(BODY, partial, SECRET)


def test_a_signed_body_that_is_not_an_event_is_refused() -> None:
    body = b'{"type": "tryon.completed", "data": 3}'
    with pytest.raises(InvalidWebhook, match="not an event"):
        verify_webhook(body, signed(body), SECRET)
