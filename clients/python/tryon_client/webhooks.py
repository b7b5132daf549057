"""Receiving the gateway's webhooks: check the Standard Webhooks signature, decode the event.

    event = verify_webhook(request_body, request_headers, endpoint_secret)
    match event:
        case TryOnCompleted(data=tryon): show(tryon.result.image_url)
        case TryOnFailed(data=tryon): report(tryon.error)

Deliveries are at least once: the same event can arrive again (a retry, a resend) with the same
`webhook-id` header, which is what a receiver deduplicates on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from standardwebhooks.webhooks import (
    EmptyWebhookSecretError,
    Webhook,
    WebhookVerificationError,
)

from tryon_client.errors import InvalidWebhook
from tryon_client.models import TryOn


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    timestamp: str

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)


class TryOnProcessing(_Event, frozen=True, kw_only=True, tag="tryon.processing"):
    """A worker took the try-on up (sent only to endpoints that list this type)."""

    data: TryOn


class TryOnCompleted(_Event, frozen=True, kw_only=True, tag="tryon.completed"):
    data: TryOn


class TryOnFailed(_Event, frozen=True, kw_only=True, tag="tryon.failed"):
    data: TryOn


class TryOnCanceled(_Event, frozen=True, kw_only=True, tag="tryon.canceled"):
    data: TryOn


class WebhookTestData(msgspec.Struct, frozen=True, rename="camel"):
    endpoint_id: str


class WebhookTest(_Event, frozen=True, kw_only=True, tag="webhook.test"):
    """What `test_webhook_endpoint()` sends."""

    data: WebhookTestData


class UnknownEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A signed event of a type this version of the client does not know yet."""

    type: str
    timestamp: str
    data: dict[str, Any]


WebhookEvent = TryOnProcessing | TryOnCompleted | TryOnFailed | TryOnCanceled | WebhookTest

_KNOWN = {str(t.__struct_config__.tag) for t in WebhookEvent.__args__}
_decode_known = msgspec.json.Decoder(WebhookEvent)
_decode_any = msgspec.json.Decoder(UnknownEvent)


def verify_webhook(
    payload: bytes | str, headers: Mapping[str, str], secret: str
) -> WebhookEvent | UnknownEvent:
    """The event of a delivery whose signature `secret` (the endpoint's `whsec_...`) made,
    within 5 minutes of now; InvalidWebhook otherwise.

    `payload` is the raw body as received (not re-encoded JSON); `headers` any mapping with
    the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers (any case).
    """
    try:
        Webhook(secret).verify(payload, dict(headers.items()), json_parse=False)
    except WebhookVerificationError as exc:
        raise InvalidWebhook(str(exc)) from exc
    except (ValueError, EmptyWebhookSecretError) as exc:
        # The library raises ValueError (binascii.Error, UnicodeDecodeError...) instead of its
        # own error for a malformed signature header, secret or body: one typed error for all.
        raise InvalidWebhook(f"malformed webhook: {exc}") from exc
    try:
        event = _decode_any.decode(payload)
        if event.type not in _KNOWN:
            return event
        known: WebhookEvent = _decode_known.decode(payload)
    except msgspec.DecodeError as exc:
        raise InvalidWebhook(f"the signed body is not an event: {exc}") from exc
    return known
