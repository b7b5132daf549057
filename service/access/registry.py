"""Apps and their keys in Redis: created, listed, rotated and revoked by `tryon-gateway keys`.

A key is shown once, when it is made; Redis keeps only its SHA-256 digest (a dump of Redis
holds nothing that authenticates). Rotation issues a new key and lets the old one live for a
grace period, so deployed pages and backends can switch over without downtime.

A deleted app's id is never reused. Deleting removes the app, its keys and its configuration
(webhook endpoints, callback secrets, catalog, signing keys, the demo's key), but state named
after the app also lives where a delete cannot reach it: Genlook's products and customers
(`<app>:...` in the shared upstream account), try-on records, photos, deliveries, session
tokens and quota counters, which expire with their retention. A new app under the old id would
inherit all of that (its end user `u1` would be the old app's upstream customer), so the id
stays taken (`{prefix}apps-deleted`).
"""

from __future__ import annotations

import hashlib
import secrets
import time

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from service.access.models import App, KeyInfo, KeyKind, Policy, SigningKey
from service.keys import Keys
from service.namespacing import check_app_id

PREFIXES: dict[KeyKind, str] = {"secret": "sk_", "publishable": "pk_"}

# Create an app unless its id is taken, by a live app or a deleted one. 1: created;
# 0: a live app has it; -1: a deleted app had it.
_CREATE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""
_KEY_BYTES: dict[KeyKind, int] = {"secret": 32, "publishable": 18}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: KeyKind) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(_KEY_BYTES[kind])


def kind_of(key: str) -> KeyKind | None:
    for kind, prefix in PREFIXES.items():
        if key.startswith(prefix):
            return kind
    return None


class UnknownApp(LookupError):
    pass


class AppIdRetired(ValueError):
    def __init__(self, app_id: str) -> None:
        super().__init__(f"app {app_id!r} was deleted; a deleted app's id is never reused")


class AppRegistry:
    _app_enc = msgspec.json.Encoder()
    _app_dec = msgspec.json.Decoder(App)
    _key_dec = msgspec.json.Decoder(KeyInfo)
    _signing_dec = msgspec.json.Decoder(SigningKey)

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._create = redis.register_script(_CREATE)

    # --- apps ---------------------------------------------------------------------------------
    async def create_app(
        self, name: str, policy: Policy, *, app_id: str | None = None
    ) -> tuple[App, str, str]:
        """A new app with one secret and one publishable key; returns the keys in clear, once.
        InvalidAppId (a ValueError) when `app_id` is outside the app id alphabet."""
        app_id = check_app_id(app_id) if app_id is not None else "app_" + secrets.token_hex(6)
        app = App(id=app_id, name=name, policy=policy)
        created = await self._create(
            keys=[self._keys.apps, self._keys.deleted_apps],
            args=[app.id, self._app_enc.encode(app)],
        )
        if created == -1:
            raise AppIdRetired(app.id)
        if not created:
            raise ValueError(f"app {app.id!r} exists")
        _, secret = await self.add_key(app.id, "secret")
        _, publishable = await self.add_key(app.id, "publishable")
        return app, secret, publishable

    async def ensure_app(self, app: App, *, secret_key: str, publishable_key: str) -> None:
        """Create or update an app with known keys (the dev stack's demo app)."""
        check_app_id(app.id)
        if await self._redis.hexists(self._keys.deleted_apps, app.id):  # type: ignore[misc]
            raise AppIdRetired(app.id)
        await self._redis.hset(self._keys.apps, app.id, self._app_enc.encode(app).decode())  # type: ignore[misc]
        for key in (secret_key, publishable_key):
            if await self.resolve(digest(key)) is None:
                await self.add_key(app.id, _require_kind(key), key=key)

    async def get(self, app_id: str) -> App | None:
        raw: bytes | None = await self._redis.hget(self._keys.apps, app_id)  # type: ignore[misc]
        return None if raw is None else self._app_dec.decode(raw)

    async def all_apps(self) -> list[App]:
        raw: dict[bytes, bytes] = await self._redis.hgetall(self._keys.apps)  # type: ignore[misc]
        return sorted((self._app_dec.decode(v) for v in raw.values()), key=lambda a: a.created_at)

    async def set_policy(self, app_id: str, policy: Policy) -> App:
        app = await self.get(app_id)
        if app is None:
            raise UnknownApp(app_id)
        app = msgspec.structs.replace(app, policy=policy)
        await self._redis.hset(self._keys.apps, app.id, self._app_enc.encode(app).decode())  # type: ignore[misc]
        return app

    async def delete_app(self, app_id: str) -> bool:
        """Remove the app, revoke every key it has, remove its configuration, and retire its
        id (see the module's docstring). False if there was no such app."""
        if await self.get(app_id) is None:
            return False
        for info in await self.keys_of(app_id):
            await self.revoke(app_id, info.key_id)
        k = self._keys
        raw: list[bytes] = await self._redis.zrange(k.webhook_endpoints(app_id), 0, -1)
        endpoints = [e.decode() for e in raw]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.deleted_apps, app_id, str(time.time()))
            pipe.hdel(k.apps, app_id)
            for endpoint_id in endpoints:
                pipe.delete(k.webhook_endpoint(endpoint_id))
                pipe.srem(k.webhook_endpoints_disabled, endpoint_id)
            pipe.delete(
                k.webhook_endpoints(app_id),
                k.callback_secrets(app_id),
                k.catalog(app_id),
                k.catalog_order(app_id),
                k.signing_keys(app_id),
                k.app_keys(app_id),
                k.demo_publishable_key(app_id),
            )
            await pipe.execute()
        return True

    # --- keys ---------------------------------------------------------------------------------
    async def add_key(
        self, app_id: str, kind: KeyKind, *, key: str | None = None
    ) -> tuple[KeyInfo, str]:
        if await self.get(app_id) is None:
            raise UnknownApp(app_id)
        key = key or new_key(kind)
        info = KeyInfo(key_id="key_" + secrets.token_hex(6), app=app_id, kind=kind, hint=key[:10])
        d = digest(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.app_key(d), msgspec.json.encode(info))
            pipe.hset(self._keys.app_keys(app_id), info.key_id, d)
            await pipe.execute()
        return info, key

    async def resolve(self, key_digest: str) -> KeyInfo | None:
        raw: bytes | None = await self._redis.get(self._keys.app_key(key_digest))
        if raw is None:
            return None
        info = self._key_dec.decode(raw)
        if info.expires_at is not None and info.expires_at <= time.time():
            return None
        return info

    async def keys_of(self, app_id: str) -> list[KeyInfo]:
        ids: dict[bytes, bytes] = await self._redis.hgetall(self._keys.app_keys(app_id))  # type: ignore[misc]
        found = []
        for key_id, d in ids.items():
            info = await self.resolve(d.decode())
            if info is None:  # expired after a rotation: forget it
                await self._redis.hdel(self._keys.app_keys(app_id), key_id.decode())  # type: ignore[misc]
            else:
                found.append(info)
        return sorted(found, key=lambda i: i.created_at)

    async def rotate(self, app_id: str, kind: KeyKind, *, grace: float) -> tuple[KeyInfo, str]:
        """A new key of `kind`; the current ones keep working for `grace` seconds."""
        new, key = await self.add_key(app_id, kind)
        until = time.time() + grace
        ids: dict[bytes, bytes] = await self._redis.hgetall(self._keys.app_keys(app_id))  # type: ignore[misc]
        for key_id, d in ids.items():
            info = await self.resolve(d.decode())
            if info is None or info.kind != kind or info.key_id == new.key_id:
                continue
            if info.expires_at is not None and info.expires_at < until:
                continue  # already ending sooner
            if grace <= 0:
                await self.revoke(app_id, key_id.decode())
                continue
            ending = msgspec.structs.replace(info, expires_at=until)
            await self._redis.set(
                self._keys.app_key(d.decode()),
                msgspec.json.encode(ending),
                pxat=int(until * 1000),
            )
        return new, key

    async def revoke(self, app_id: str, key_id: str) -> bool:
        d: bytes | None = await self._redis.hget(self._keys.app_keys(app_id), key_id)  # type: ignore[misc]
        if d is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.app_key(d.decode()))
            pipe.hdel(self._keys.app_keys(app_id), key_id)
            await pipe.execute()
        return True

    # --- offline token signing keys -----------------------------------------------------------
    async def add_signing_key(
        self, app_id: str, public_pem: str | None = None
    ) -> tuple[SigningKey, str | None]:
        """Register a P-256 public key (ES256). Without one, a pair is generated and the
        private half is returned once, for the merchant's backend; it is not kept here."""
        if await self.get(app_id) is None:
            raise UnknownApp(app_id)
        private_pem = None
        if public_pem is None:
            private = ec.generate_private_key(ec.SECP256R1())
            private_pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            public_pem = (
                private.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
        else:
            loaded = serialization.load_pem_public_key(public_pem.encode())
            if (
                not isinstance(loaded, ec.EllipticCurvePublicKey)
                or loaded.curve.name != "secp256r1"
            ):
                raise ValueError("the public key must be an EC P-256 key (ES256)")
        signing = SigningKey(kid="kid_" + secrets.token_hex(6), public_pem=public_pem)
        await self._redis.hset(  # type: ignore[misc]
            self._keys.signing_keys(app_id), signing.kid, msgspec.json.encode(signing).decode()
        )
        return signing, private_pem

    async def signing_key(self, app_id: str, kid: str) -> SigningKey | None:
        raw: bytes | None = await self._redis.hget(self._keys.signing_keys(app_id), kid)  # type: ignore[misc]
        return None if raw is None else self._signing_dec.decode(raw)

    async def signing_keys(self, app_id: str) -> list[SigningKey]:
        raw: dict[bytes, bytes] = await self._redis.hgetall(self._keys.signing_keys(app_id))  # type: ignore[misc]
        return sorted(
            (self._signing_dec.decode(v) for v in raw.values()), key=lambda s: s.created_at
        )

    async def remove_signing_key(self, app_id: str, kid: str) -> bool:
        return bool(await self._redis.hdel(self._keys.signing_keys(app_id), kid))  # type: ignore[misc]


def _require_kind(key: str) -> KeyKind:
    kind = kind_of(key)
    if kind is None:
        raise ValueError("keys start with sk_ or pk_")
    return kind
