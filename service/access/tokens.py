"""End-user tokens: what a browser shows besides the publishable key.

Two kinds, one grant. `POST /v1/sessions` mints an opaque `ut_` token kept in Redis until it
expires (revocable, no crypto on the merchant's side). A backend that would rather not call us
signs a JWT itself (ES256, with a key registered by `tryon-gateway keys signing-key`); the
gateway holds only the public half. Either way the browser gets a grant: one app, one end user,
an expiry, how many try-ons and which products.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from redis.asyncio import Redis

from service.access.registry import AppRegistry
from service.domain_errors import Unauthenticated
from service.identifiers import identifier_problem
from service.keys import Keys

AUDIENCE = "tryon-gateway"
MAX_TOKEN_MINUTES = 60
# Clock skew tolerated between the merchant's backend and us when checking exp/iat.
LEEWAY_SECONDS = 30
_SESSION_PREFIX = "ut_"
KEY_CACHE_SECONDS = 30.0


class TokenGrant(msgspec.Struct, frozen=True, kw_only=True):
    # Names the token's try-on counter; never the token itself.
    token_id: str
    app: str
    external_user_id: str
    # When the gateway stops accepting the token: an offline token's `exp` plus the clock-skew
    # leeway, so `verify` is the one place that decides expiry for both kinds.
    expires_at: float
    max_tryons: int
    # externalIds the token may try on; None: any product of the app's catalog.
    products: tuple[str, ...] | None = None


class OfflineClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The claims an offline token must carry (beyond exp/iat/aud checked by PyJWT)."""

    iss: str
    sub: str
    jti: str
    iat: float
    exp: float
    max_tryons: int
    products: tuple[str, ...] | None = None


def invalid_token(message: str = "The end-user token is not valid.") -> Unauthenticated:
    return Unauthenticated("INVALID_TOKEN", message)


def token_expired() -> Unauthenticated:
    return Unauthenticated("TOKEN_EXPIRED", "The end-user token has expired.")


class TokenVerifier:
    _grant_enc = msgspec.json.Encoder()
    _grant_dec = msgspec.json.Decoder(TokenGrant)

    def __init__(self, redis: Redis, keys: Keys, registry: AppRegistry) -> None:
        self._redis = redis
        self._keys = keys
        self._registry = registry
        # kid -> (app, cached until, loaded key)
        self._public_keys: dict[str, tuple[str, float, Any]] = {}

    async def mint(
        self,
        app: str,
        external_user_id: str,
        *,
        minutes: int,
        max_tryons: int,
        products: tuple[str, ...] | None,
    ) -> tuple[str, TokenGrant]:
        token = _SESSION_PREFIX + secrets.token_urlsafe(32)
        d = hashlib.sha256(token.encode()).hexdigest()
        grant = TokenGrant(
            token_id="s_" + d[:32],
            app=app,
            external_user_id=external_user_id,
            expires_at=time.time() + minutes * 60,
            max_tryons=max_tryons,
            products=products,
        )
        ttl = minutes * 60_000
        mine = self._keys.customer_sessions(app, external_user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.session_token(d), self._grant_enc.encode(grant), px=ttl)
            pipe.sadd(mine, d)
            pipe.pexpire(mine, ttl, nx=True)  # a new set: lives as long as this token
            pipe.pexpire(mine, ttl, gt=True)  # else: as long as the longest-lived one
            await pipe.execute()
        return token, grant

    async def revoke_user(self, app: str, external_user_id: str) -> int:
        """Revoke every session token of one end user (a GDPR erase); returns how many."""
        mine = self._keys.customer_sessions(app, external_user_id)
        digests: set[bytes] = await self._redis.smembers(mine)  # type: ignore[misc]
        keys = [self._keys.session_token(d.decode()) for d in digests]
        await self._redis.delete(*keys, mine)
        return len(keys)

    async def verify(self, token: str, app: str) -> TokenGrant:
        """The grant of a token presented with `app`'s publishable key, or INVALID_TOKEN."""
        if token.startswith(_SESSION_PREFIX):
            grant = await self._session(token)
        elif token.count(".") == 2:
            grant = await self._offline(token, app)
        else:
            raise invalid_token()
        # A token of another app is as good as a forged one.
        if grant.app != app:
            raise invalid_token()
        if grant.expires_at <= time.time():
            raise token_expired()
        return grant

    async def _session(self, token: str) -> TokenGrant:
        d = hashlib.sha256(token.encode()).hexdigest()
        raw: bytes | None = await self._redis.get(self._keys.session_token(d))
        if raw is None:  # unknown, expired (the key lapses with it) or revoked
            raise invalid_token()
        return self._grant_dec.decode(raw)

    async def _offline(self, token: str, app: str) -> TokenGrant:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise invalid_token() from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") != "ES256":
            raise invalid_token("Offline tokens are ES256 JWTs with the `kid` of a signing key.")
        key = await self._public_key(app, kid)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=app,
                leeway=LEEWAY_SECONDS,
                # `exp` is required but judged by `verify`, with the same leeway (expires_at).
                options={
                    "require": ["exp", "iat", "iss", "sub", "jti", "aud"],
                    "verify_exp": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise invalid_token() from exc
        try:
            claims = msgspec.convert(payload, OfflineClaims, strict=False)
        except msgspec.ValidationError as exc:
            raise invalid_token(f"The end-user token's claims are invalid: {exc}") from exc
        # A token living longer than an hour (or issued in the future) is refused, so a leaked
        # token is worth little even if the backend set a long expiry.
        if (
            claims.exp - claims.iat > MAX_TOKEN_MINUTES * 60
            or claims.iat > time.time() + LEEWAY_SECONDS
        ):
            raise invalid_token(f"End-user tokens live at most {MAX_TOKEN_MINUTES} minutes.")
        if not 0 < claims.max_tryons <= 1000 or identifier_problem(claims.sub) is not None:
            raise invalid_token("The end-user token's claims are out of range.")
        return TokenGrant(
            token_id="j_" + hashlib.sha256(f"{app}\0{claims.jti}".encode()).hexdigest()[:32],
            app=app,
            external_user_id=claims.sub,
            expires_at=claims.exp + LEEWAY_SECONDS,
            max_tryons=claims.max_tryons,
            products=claims.products,
        )

    async def _public_key(self, app: str, kid: str) -> Any:
        now = time.monotonic()
        cached = self._public_keys.get(kid)
        if cached is not None and cached[0] == app and cached[1] > now:
            return cached[2]
        signing = await self._registry.signing_key(app, kid)
        if signing is None:
            raise invalid_token()
        key = serialization.load_pem_public_key(signing.public_pem.encode())
        # Cached briefly: a removed signing key stops verifying within this many seconds.
        self._public_keys[kid] = (app, now + KEY_CACHE_SECONDS, key)
        return key
