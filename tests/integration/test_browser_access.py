"""Browser access in process, on real Redis: keys, end-user tokens (opaque and offline JWT),
what a publishable key may and may not do, CORS and security headers, quotas and their give-back.

The same rules over real HTTP with concurrent requests are in tests/e2e/test_browser_abuse.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from service.access.models import Policy
from service.access.quotas import Quotas
from service.access.registry import AppRegistry, digest
from service.app import create_app
from service.keys import Keys
from service.settings import Settings

from tests.conftest import TEST_REDIS_URL, assert_error

ORIGIN = "https://shop.example"
TRYON = {
    "products": [{"externalId": "tee"}],
    "person": {"image": {"source": {"id": "img_missing"}}},
}
KEYS = Keys("tryon:")


class Shop:
    def __init__(self, client: AsyncTestClient[Any], sk: str, pk: str, app_id: str) -> None:
        self.client = client
        self.sk = sk
        self.pk = pk
        self.app_id = app_id

    def server(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sk}"}

    def browser(self, token: str | None, origin: str | None = ORIGIN) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.pk}"}
        if token is not None:
            headers["X-Tryon-Token"] = token
        if origin is not None:
            headers["Origin"] = origin
        return headers

    async def token(self, user: str = "u1", **body: Any) -> str:
        r = await self.client.post(
            "/v1/sessions", json={"externalUserId": user, **body}, headers=self.server()
        )
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token


async def _shop(redis: Redis, client: AsyncTestClient[Any], policy: Policy) -> Shop:
    registry = AppRegistry(redis, KEYS)
    app, sk, pk = await registry.create_app("Shop", policy, app_id="shop")
    shop = Shop(client, sk, pk, app.id)
    product = {"title": "Tee", "images": [{"source": {"url": "https://example.com/t.png"}}]}
    r = await client.put("/v1/products/tee", json=product, headers=shop.server())
    assert r.status_code in (200, 201), r.text
    return shop


@pytest.fixture
async def client(redis: Redis) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings.from_env({"REDIS_URL": TEST_REDIS_URL, "GATEWAY_KEY_CACHE_SECONDS": "0"})
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


@pytest.fixture
async def shop(redis: Redis, client: AsyncTestClient[Any]) -> Shop:
    return await _shop(redis, client, Policy(allowed_origins=(ORIGIN,)))


async def _upload(shop: Shop, token: str) -> str:
    from tests.e2e.conftest import photo_bytes as jpeg_bytes

    r = await shop.client.post(
        "/v1/images",
        files={"file": ("me.jpg", jpeg_bytes(), "image/jpeg")},
        headers=shop.browser(token),
    )
    assert r.status_code == 201, r.text
    image_id: str = r.json()["id"]
    return image_id


def _tryon(image_id: str, external_id: str = "tee") -> dict[str, Any]:
    return {
        "products": [{"externalId": external_id}],
        "person": {"image": {"source": {"id": image_id}}},
    }


# --- keys ----------------------------------------------------------------------------------


async def test_keys_are_stored_only_as_digests(redis: Redis, shop: Shop) -> None:
    dump = b"".join([k + (await redis.dump(k) or b"") for k in await redis.keys("*")])
    assert shop.sk.encode() not in dump
    assert shop.pk.encode() not in dump
    assert await redis.exists(KEYS.app_key(digest(shop.sk)))


async def test_rotation_keeps_the_old_key_for_the_grace_period_then_revokes(
    redis: Redis, shop: Shop
) -> None:
    registry = AppRegistry(redis, KEYS)
    _, new_sk = await registry.rotate("shop", "secret", grace=1.0)
    for key in (shop.sk, new_sk):
        r = await shop.client.get("/v1/products", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
    await asyncio.sleep(1.1)
    r = await shop.client.get("/v1/products", headers=shop.server())
    assert_error(r, 401, "INVALID_API_KEY")
    info = next(k for k in await registry.keys_of("shop") if k.kind == "secret")
    assert await registry.revoke("shop", info.key_id)
    r = await shop.client.get("/v1/products", headers={"Authorization": f"Bearer {new_sk}"})
    assert r.status_code == 401


# --- what a browser may do -------------------------------------------------------------------


async def test_browser_flow_upload_tryon_read_and_stream(shop: Shop) -> None:
    token = await shop.token("alice")
    image_id = await _upload(shop, token)
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(token))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["externalUserId"] == "alice"
    r = await shop.client.get(f"/v1/try-ons/{body['id']}", headers=shop.browser(token))
    assert r.status_code == 200
    assert r.json()["status"] == "queued"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]


async def test_unrouted_paths_carry_the_edge_headers_too(shop: Shop) -> None:
    # The edge wraps Litestar's handler itself, so a 404 no route answered is covered.
    r = await shop.client.get("/v1/no-such-route", headers={"Origin": ORIGIN})
    assert_error(r, 404, "NOT_FOUND")
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert len(r.headers["x-request-id"]) == 16
    r = await shop.client.get("/no-such-page")
    assert r.status_code == 404
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/products"),
        ("PUT", "/v1/products/tee"),
        ("GET", "/v1/account/credits"),
        ("GET", "/v1/webhook-endpoints"),
        ("POST", "/v1/sessions"),
        ("DELETE", "/v1/customers/alice"),
    ],
)
async def test_publishable_key_on_a_secret_route_is_refused(
    shop: Shop, method: str, path: str
) -> None:
    token = await shop.token()
    r = await shop.client.request(method, path, headers=shop.browser(token), json={})
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "SECRET_KEY_REQUIRED"


async def test_another_users_tryon_is_not_found(shop: Shop) -> None:
    alice, bob = await shop.token("alice"), await shop.token("bob")
    image_id = await _upload(shop, alice)
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(alice))
    tryon_id = r.json()["id"]
    for path in (f"/v1/try-ons/{tryon_id}", f"/v1/try-ons/{tryon_id}/events"):
        r = await shop.client.get(path, headers=shop.browser(bob))
        assert_error(r, 404, "TRYON_NOT_FOUND")
    # Bob cannot use Alice's photo either.
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(bob))
    assert_error(r, 404, "IMAGE_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {
                "products": [
                    {"externalId": "tee", "images": [{"source": {"url": "https://e.com/x.png"}}]}
                ],
                "person": {"image": {"source": {"id": "img_x"}}},
            },
            "INLINE_PRODUCT_FORBIDDEN",
        ),
        (
            {
                "products": [{"images": [{"source": {"url": "https://e.com/x.png"}}]}],
                "person": {"image": {"source": {"id": "img_x"}}},
            },
            "INLINE_PRODUCT_FORBIDDEN",
        ),
        (
            {
                "products": [{"externalId": "tee"}],
                "person": {"image": {"source": {"url": "https://e.com/me.jpg"}}},
            },
            "PERSON_URL_FORBIDDEN",
        ),
        ({**TRYON, "callbackUrl": "https://e.com/hook"}, "CALLBACK_URL_FORBIDDEN"),
        ({**TRYON, "externalUserId": "mallory"}, "EXTERNAL_USER_MISMATCH"),
    ],
)
async def test_browser_may_not_send_inline_products_urls_or_other_users(
    redis: Redis, shop: Shop, body: dict[str, Any], code: str
) -> None:
    token = await shop.token()
    r = await shop.client.post("/v1/try-ons", json=body, headers=shop.browser(token))
    assert r.status_code == 403, r.text
    assert r.json()["code"] == code
    assert not await redis.keys("tryon:t:*")
    assert await redis.get(KEYS.token_uses("x")) is None


async def test_a_browser_uploads_only_as_its_own_end_user(redis: Redis, shop: Shop) -> None:
    from tests.e2e.conftest import photo_bytes as jpeg_bytes

    token = await shop.token("u1")
    r = await shop.client.post(
        "/v1/images",
        files={"file": ("me.jpg", jpeg_bytes(), "image/jpeg")},
        data={"externalUserId": "mallory"},
        headers=shop.browser(token),
    )
    assert_error(r, 403, "EXTERNAL_USER_MISMATCH")
    assert not await redis.keys("tryon:img:*")


async def test_token_limited_to_products(shop: Shop) -> None:
    token = await shop.token(products=["tee"])
    r = await shop.client.post(
        "/v1/try-ons", json=_tryon("img_x", "other"), headers=shop.browser(token)
    )
    assert_error(r, 403, "PRODUCT_NOT_ALLOWED")
    r = await shop.client.post(
        "/v1/sessions",
        json={"externalUserId": "u", "products": ["nope"]},
        headers=shop.server(),
    )
    assert_error(r, 404, "PRODUCT_NOT_FOUND")


# --- tokens ----------------------------------------------------------------------------------


async def test_missing_forged_and_wrong_app_tokens(redis: Redis, shop: Shop) -> None:
    r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(None))
    assert_error(r, 401, "TOKEN_REQUIRED")
    for forged in ("ut_" + "A" * 43, "garbage", "a.b.c"):
        r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(forged))
        assert_error(r, 401, "INVALID_TOKEN")
    registry = AppRegistry(redis, KEYS)
    _, other_sk, other_pk = await registry.create_app(
        "Other", Policy(allowed_origins=(ORIGIN,)), app_id="other"
    )
    r = await shop.client.post(
        "/v1/sessions",
        json={"externalUserId": "u1"},
        headers={"Authorization": f"Bearer {other_sk}"},
    )
    other_token = r.json()["token"]
    # Another app's token with this app's publishable key, and the reverse.
    r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(other_token))
    assert_error(r, 401, "INVALID_TOKEN")
    headers = {"Authorization": f"Bearer {other_pk}", "X-Tryon-Token": await shop.token()}
    r = await shop.client.get("/v1/try-ons/to_x", headers=headers)
    assert_error(r, 401, "INVALID_TOKEN")


async def test_expired_session_token(shop: Shop, redis: Redis) -> None:
    token = await shop.token(expiresInMinutes=1)
    keys = await redis.keys("tryon:session:*")
    await redis.pexpire(keys[0], 1)  # the token lapses with its key
    await asyncio.sleep(0.01)
    r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(token))
    assert_error(r, 401, "INVALID_TOKEN")


async def _signing_key(redis: Redis) -> tuple[str, str]:
    key, private = await AppRegistry(redis, KEYS).add_signing_key("shop")
    assert private is not None
    return key.kid, private


def _jwt(private: str, kid: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "shop",
        "aud": "tryon-gateway",
        "sub": "carol",
        "jti": "order-1",
        "iat": now,
        "exp": now + 600,
        "max_tryons": 2,
        **claims,
    }
    return jwt.encode(payload, private, algorithm="ES256", headers={"kid": kid})


async def test_offline_jwt_accepted_and_every_tampering_refused(redis: Redis, shop: Shop) -> None:
    kid, private = await _signing_key(redis)
    good = _jwt(private, kid)
    image_id = await _upload(shop, good)
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(good))
    assert r.status_code == 202, r.text
    assert r.json()["externalUserId"] == "carol"

    now = int(time.time())
    _, other_private = await AppRegistry(redis, KEYS).add_signing_key("shop")
    header, _, signature = good.split(".")
    tampered_payload = _jwt(private, kid, sub="mallory").split(".")[1]
    cases = {
        "tampered claims": f"{header}.{tampered_payload}.{signature}",
        "signed by another key": _jwt(other_private, kid),
        "unknown kid": _jwt(private, "kid_nope"),
        "other issuer": _jwt(private, kid, iss="other"),
        "other audience": _jwt(private, kid, aud="someone-else"),
        "lives too long": _jwt(private, kid, exp=now + 7200),
        "control characters in sub": _jwt(private, kid, sub="carol\r\nadmin"),
        "bidi override in sub": _jwt(private, kid, sub="\u202elorac"),
        "no max_tryons": jwt.encode(
            {
                "iss": "shop",
                "aud": "tryon-gateway",
                "sub": "c",
                "jti": "j",
                "iat": now,
                "exp": now + 60,
            },
            private,
            algorithm="ES256",
            headers={"kid": kid},
        ),
        "alg none": jwt.encode(
            {"iss": "shop", "sub": "c"}, None, algorithm="none", headers={"kid": kid}
        ),
    }
    for name, token in cases.items():
        r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(token))
        assert r.status_code == 401, name
        assert r.json()["code"] == "INVALID_TOKEN", name
    expired = _jwt(private, kid, iat=now - 1000, exp=now - 100)
    r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(expired))
    assert_error(r, 401, "TOKEN_EXPIRED")


async def test_offline_jwt_gets_30_s_of_clock_skew_past_exp(redis: Redis, shop: Shop) -> None:
    """docs/browser.md: an expired token gets TOKEN_EXPIRED, with 30 s of clock skew."""
    kid, private = await _signing_key(redis)
    now = int(time.time())
    late = _jwt(private, kid, jti="late", iat=now - 620, exp=now - 20)
    r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(late))
    assert_error(r, 404, "TRYON_NOT_FOUND")  # authenticated: the try-on is what is missing
    too_late = _jwt(private, kid, jti="too-late", iat=now - 640, exp=now - 40)
    r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(too_late))
    assert_error(r, 401, "TOKEN_EXPIRED")


# --- origins and CORS ------------------------------------------------------------------------


async def test_origin_not_allowed_and_preflight(shop: Shop) -> None:
    token = await shop.token()
    r = await shop.client.get(
        "/v1/try-ons/to_x", headers=shop.browser(token, origin="https://evil.example")
    )
    assert_error(r, 403, "ORIGIN_NOT_ALLOWED")
    assert "access-control-allow-origin" not in r.headers

    def preflight(origin: str) -> dict[str, str]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-tryon-token, content-type",
        }

    ok = await shop.client.options("/v1/try-ons", headers=preflight(ORIGIN))
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "x-tryon-token" in ok.headers["access-control-allow-headers"]
    bad = await shop.client.options("/v1/try-ons", headers=preflight("https://evil.example"))
    assert bad.status_code == 403
    assert "access-control-allow-origin" not in bad.headers


# --- quotas ----------------------------------------------------------------------------------


async def test_token_quota_is_exact_and_given_back_on_failure(redis: Redis, shop: Shop) -> None:
    token = await shop.token(maxTryOns=2)
    image_id = await _upload(shop, token)
    results = await asyncio.gather(
        *(
            shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(token))
            for _ in range(10)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [202] * 2 + [402] * 8
    refused = next(r for r in results if r.status_code == 402)
    assert refused.json()["code"] == "TOKEN_QUOTA_EXHAUSTED"
    # A try-on that ends without spending (here: canceled by the app) gives its unit back.
    accepted = next(r for r in results if r.status_code == 202).json()["id"]
    r = await shop.client.delete(f"/v1/try-ons/{accepted}", headers=shop.server())
    assert r.status_code == 200
    assert r.json()["status"] == "canceled"
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(token))
    assert r.status_code == 202, r.text
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=shop.browser(token))
    assert r.status_code == 402


async def test_idempotent_replay_spends_nothing(shop: Shop) -> None:
    token = await shop.token(maxTryOns=1)
    image_id = await _upload(shop, token)
    headers = {**shop.browser(token), "Idempotency-Key": "k1"}
    first = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=headers)
    again = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]


async def test_rate_limit_per_user_answers_429_with_retry_after(
    redis: Redis, client: AsyncTestClient[Any]
) -> None:
    shop = await _shop(redis, client, Policy(allowed_origins=(ORIGIN,), user_rate_per_minute=3))
    token = await shop.token()
    codes = []
    for _ in range(5):
        r = await shop.client.get("/v1/try-ons/to_x", headers=shop.browser(token))
        codes.append(r.status_code)
    assert codes == [404, 404, 404, 429, 429]
    assert r.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_anonymous_browsers_only_when_the_app_allows(
    redis: Redis, client: AsyncTestClient[Any]
) -> None:
    shop = await _shop(
        redis,
        client,
        Policy(allowed_origins=(ORIGIN,), anonymous=True, anonymous_tryons_per_ip_per_day=1),
    )
    image = await shop.client.post(
        "/v1/images",
        files={"file": ("me.jpg", _jpeg(), "image/jpeg")},
        headers=shop.browser(None),
    )
    assert image.status_code == 201, image.text
    body = _tryon(image.json()["id"])
    first = await shop.client.post("/v1/try-ons", json=body, headers=shop.browser(None))
    assert first.status_code == 202, first.text
    assert first.json()["externalUserId"].startswith("anon_")
    second = await shop.client.post("/v1/try-ons", json=body, headers=shop.browser(None))
    assert_error(second, 402, "ANONYMOUS_QUOTA_EXHAUSTED")


async def test_give_back_happens_once(redis: Redis) -> None:
    quotas = Quotas(redis, KEYS)
    now = time.time()
    taken = await quotas.take([quotas.daily_cap("shop", 5, now)])
    assert await quotas.give_back("to_1", taken)
    assert not await quotas.give_back("to_1", taken)
    assert int(await redis.get(taken[0]) or 0) == 0


def _jpeg() -> bytes:
    from tests.e2e.conftest import photo_bytes as jpeg_bytes

    return jpeg_bytes()


async def test_browser_uploads_are_rate_limited_per_user_before_reading(
    redis: Redis, client: AsyncTestClient[Any]
) -> None:
    shop = await _shop(redis, client, Policy(allowed_origins=(ORIGIN,), uploads_per_minute=2))
    alice, bob = await shop.token("alice"), await shop.token("bob")
    for _ in range(2):
        await _upload(shop, alice)
    r = await shop.client.post(
        "/v1/images", files={"file": ("me.jpg", b"not even read", "image/jpeg")},
        headers=shop.browser(alice),
    )  # fmt: skip
    assert_error(r, 429, "RATE_LIMITED")
    assert int(r.headers["retry-after"]) >= 1
    await _upload(shop, bob)  # per user: Bob is not held back by Alice
    # Server-side uploads are not browser-limited.
    for _ in range(3):
        r = await shop.client.post(
            "/v1/images", files={"file": ("me.jpg", _jpeg(), "image/jpeg")}, headers=shop.server()
        )
        assert r.status_code == 201


async def test_browser_idempotency_keys_take_the_full_255_characters(shop: Shop) -> None:
    token = await shop.token()
    image_id = await _upload(shop, token)
    headers = {**shop.browser(token), "Idempotency-Key": "k" * 255}
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=headers)
    assert r.status_code == 202, r.text
    headers["Idempotency-Key"] = "k" * 256
    r = await shop.client.post("/v1/try-ons", json=_tryon(image_id), headers=headers)
    assert_error(r, 400, "VALIDATION_FAILED")
