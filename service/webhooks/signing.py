"""Standard Webhooks v1 signatures (https://www.standardwebhooks.com, the scheme Svix uses).

A secret is `whsec_` + base64 of 24 to 64 random bytes. Each delivery carries three headers:
`webhook-id` (stable across retries), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` once per active
secret, space separated, so a receiver holding either the old or the new secret during a
rotation accepts the message.

The HMAC itself is the reference `standardwebhooks` library's, so what we send is by
construction what every receiver library checks; this module adds strict secret parsing and
the multi-secret header.
"""

from __future__ import annotations

import base64
import binascii
import secrets as _random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeAlias

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's public prefix, not a secret)
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_SECRET_BYTES = 32

Secret: TypeAlias = str
"""A `whsec_...` string, as shown to the app once and stored with the endpoint."""


def generate_secret(nbytes: int = DEFAULT_SECRET_BYTES) -> Secret:
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: Secret) -> bytes:
    """The HMAC key of a secret; ValueError unless it is `whsec_` + 24..64 bytes of base64.

    Stricter than the library, which strips an optional prefix and skips invalid base64
    characters: a secret we sign with must decode exactly as every receiver decodes it.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is base64 after its prefix") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return key


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[Secret]) -> str:
    """The `webhook-signature` value: one `v1,<sig>` per secret, in the order given."""
    if not secrets:
        # An unsigned delivery would be indistinguishable from a forgery: never send one.
        raise ValueError("at least one secret is needed to sign")
    if not msg_id or timestamp < 0:
        raise ValueError("a message needs an id and a non-negative timestamp")
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    # The library signs a str and encodes it as UTF-8 again, so decoding is lossless for the
    # UTF-8 JSON bodies we send; a body that is not UTF-8 raises instead of being altered.
    data = body.decode("utf-8")
    return " ".join(Webhook(secret_key(s)).sign(msg_id, at, data) for s in secrets)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[Secret]) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
    }
