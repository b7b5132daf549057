"""The secrets that sign an app's per-request callback URLs (`callbackUrl` on a try-on).

Registered endpoints each have their own secret; callbacks share one per app, created on first
use and rotated like an endpoint's (the old one keeps signing during the overlap).
"""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from service.keys import Keys
from service.webhooks.models import SecretVersion
from service.webhooks.signing import Secret, generate_secret

_MAX_VERSIONS = 5


class CallbackSecrets:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(list[SecretVersion])

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def versions(self, app: str) -> list[SecretVersion]:
        key = self._keys.callback_secrets(app)
        fresh = [SecretVersion(secret=generate_secret(), created_at=time.time())]
        await self._redis.set(key, self._encoder.encode(fresh), nx=True)
        raw: bytes | None = await self._redis.get(key)
        return fresh if raw is None else self._decoder.decode(raw)

    async def active(self, app: str) -> list[Secret]:
        now = time.time()
        return [v.secret for v in await self.versions(app) if v.active(now)]

    async def current(self, app: str) -> SecretVersion:
        return (await self.versions(app))[0]

    async def rotate(self, app: str, overlap: float) -> list[SecretVersion]:
        """A new secret signs from now on; the others stop `overlap` seconds from now."""
        now = time.time()
        old = [
            SecretVersion(
                secret=v.secret,
                created_at=v.created_at,
                expires_at=min(v.expires_at or now + overlap, now + overlap),
            )
            for v in await self.versions(app)
            if v.active(now)
        ]
        versions = [SecretVersion(secret=generate_secret(), created_at=now), *old]
        await self._redis.set(
            self._keys.callback_secrets(app), self._encoder.encode(versions[:_MAX_VERSIONS])
        )
        return versions
