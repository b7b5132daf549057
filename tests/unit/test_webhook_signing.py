"""Standard Webhooks signatures, checked against the published vector and the reference library.

The vector (secret, id, timestamp, payload, signature) is the one the Standard Webhooks
project publishes in its own libraries' tests (standard-webhooks/standard-webhooks:
libraries/python/tests/test_webhooks.py `test_sign_function` and libraries/go/webhook_test.go
`TestWebhookSign`), the same one Svix's libraries use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

import pytest
from service.webhooks import signing
from service.webhooks.models import SecretVersion, WebhookEndpoint
from service.webhooks.registry import active_secrets
from standardwebhooks import Webhook, WebhookVerificationError

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = b'{"type":"tryon.completed","data":{"id":"t_1","status":"completed"}}'


def fresh_headers(secrets: list[str], body: bytes = BODY, msg_id: str = "msg_1") -> dict[str, str]:
    # The library's verify refuses timestamps more than 5 minutes from its own clock.
    return signing.headers(msg_id, int(time.time()), body, secrets)


def test_published_vector() -> None:
    assert (
        signing.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY, [VECTOR_SECRET]) == VECTOR_SIGNATURE
    )


def test_headers_carry_id_timestamp_and_signature() -> None:
    assert signing.headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY, [VECTOR_SECRET]) == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_matches_the_spec_formula_on_non_ascii_bytes() -> None:
    # Independent of the library: HMAC-SHA256(key, "<id>.<ts>.<body bytes>"), base64.
    secret = signing.generate_secret()
    body = '{"title":"Tee-shirt rouge \u2013 \u00e9t\u00e9 \u2713"}'.encode()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_2.1700000000." + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert signing.sign("msg_2", 1_700_000_000, body, [secret]) == expected


def test_each_of_several_signatures_verifies_with_its_own_secret() -> None:
    secrets = [signing.generate_secret(n) for n in (24, 32, 64)]
    headers = fresh_headers(secrets)
    parts = headers["webhook-signature"].split(" ")
    assert len(parts) == 3
    for secret, part in zip(secrets, parts, strict=True):
        assert part == signing.sign("msg_1", int(headers["webhook-timestamp"]), BODY, [secret])
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(BODY, headers)


def test_rotation_sends_both_signatures_and_each_receiver_verifies() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    endpoint = WebhookEndpoint(
        id="we_x",
        app="a",
        url="https://example.com/hook",
        created_at=0.0,
        updated_at=100.0,
        secrets=[
            SecretVersion(secret=new, created_at=100.0),
            SecretVersion(secret=old, created_at=0.0, expires_at=200.0),
        ],
    )
    during = active_secrets(endpoint, 150.0)
    assert during == [new, old]  # the new secret first
    headers = fresh_headers(during)
    assert Webhook(old).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)

    after = active_secrets(endpoint, 200.0)
    assert after == [new]
    headers = fresh_headers(after)
    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, headers)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", b'{"type":"tryon.completed","data":{"id":"t_2","status":"completed"}}'),
        ("webhook-id", "msg_2"),
        ("webhook-timestamp", "shift"),
    ],
)
def test_tampering_fails(field: str, value: object) -> None:
    secret = signing.generate_secret()
    headers = fresh_headers([secret])
    body = BODY
    if field == "body":
        assert isinstance(value, bytes)
        body = value
    elif value == "shift":
        headers[field] = str(int(headers[field]) - 1)
    else:
        assert isinstance(value, str)
        headers[field] = value
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(body, headers)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        # no comma: the library's `version, signature = entry.split(",")` fails to unpack
        ("v1", ValueError),
        # not base64 (bad padding): base64.b64decode raises binascii.Error
        ("v1,abc", binascii.Error),
        # a malformed entry before a valid one still aborts verification
        ("garbage {valid}", ValueError),
    ],
)
def test_library_raises_value_errors_on_malformed_headers(header: str, error: type) -> None:
    """The reference library raises ValueError/binascii.Error, not WebhookVerificationError,
    on a malformed `webhook-signature` (design.md). binascii.Error is a ValueError, so a
    receiver catching (WebhookVerificationError, ValueError) rejects all of them."""
    secret = signing.generate_secret()
    headers = fresh_headers([secret])
    headers["webhook-signature"] = header.format(valid=headers["webhook-signature"])
    with pytest.raises(error) as caught:
        Webhook(secret).verify(BODY, headers)
    assert not isinstance(caught.value, WebhookVerificationError)
    assert isinstance(caught.value, ValueError)
    # What we emit never has that shape: one `v1,<base64>` per secret, single spaces.
    for part in fresh_headers([secret, secret])["webhook-signature"].split(" "):
        version, sig = part.split(",")
        assert version == "v1"
        assert len(base64.b64decode(sig, validate=True)) == 32


def test_generated_secrets() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == 32
    assert signing.generate_secret() != secret
    assert len(signing.secret_key(signing.generate_secret(64))) == 64
    for n in (23, 65):
        with pytest.raises(ValueError, match="bytes"):
            signing.generate_secret(n)


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw",  # not base64
        "whsec_" + base64.b64encode(b"x" * 16).decode(),  # too short
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
    ],
)
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        signing.sign("msg_1", 1, BODY, [secret])


def test_refuses_to_send_unsigned_or_to_alter_the_body() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signing.sign("msg_1", 1, BODY, [])
    with pytest.raises(ValueError, match="id"):
        signing.sign("", 1, BODY, [VECTOR_SECRET])
    with pytest.raises(UnicodeDecodeError):
        signing.sign("msg_1", 1, b"\xff\xfe", [VECTOR_SECRET])
