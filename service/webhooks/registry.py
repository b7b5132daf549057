"""The webhook endpoints each app registered: storage, secret rotation, enable/disable.

Each endpoint is one JSON string (`Keys.webhook_endpoint`); each app has an index of its ids
(`Keys.webhook_endpoints`) in creation order. Ids are global and every read checks the owner,
so another app's id reads as absent. Every change is a read-modify-write under WATCH: a
rotation racing an update must never lose the secret it already showed the app.

URLs are stored as given: the route layer runs the SSRF guard before calling in here.
"""

from __future__ import annotations

import builtins
import re
import secrets as _random
import time
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis
from redis.exceptions import WatchError

from service.keys import Keys
from service.webhooks.models import EndpointCreate, EndpointUpdate, SecretVersion, WebhookEndpoint
from service.webhooks.signing import Secret, generate_secret

Clock = Callable[[], float]

# Crockford's base32 in lower case: its ASCII order is its numeric order, so ids that begin
# with the creation time in it sort by creation.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ID = re.compile(r"^we_[0-9a-hjkmnp-tv-z]{26}$")
# Secrets signing at once after rotations in quick succession; beyond this the oldest stops
# early, which only a receiver two rotations behind would notice.
MAX_SECRET_VERSIONS = 5
_CAS_ATTEMPTS = 20


def new_endpoint_id(now: float) -> str:
    """`we_` + 10 characters of milliseconds (as ULIDs) + 16 random ones (80 bits)."""
    ms = int(now * 1000)
    stamp = "".join(_ALPHABET[(ms >> shift) & 31] for shift in range(45, -1, -5))
    return "we_" + stamp + "".join(_random.choice(_ALPHABET) for _ in range(16))


def active_secrets(endpoint: WebhookEndpoint, now: float) -> list[Secret]:
    """The secrets that sign a delivery made at `now`, newest first."""
    return [v.secret for v in endpoint.secrets if v.active(now)]


class EndpointRegistry:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(WebhookEndpoint)

    def __init__(self, redis: Redis, keys: Keys, *, clock: Clock = time.time) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock

    # --- reads ---------------------------------------------------------------------------------

    async def get(self, app: str, endpoint_id: str) -> WebhookEndpoint | None:
        if not _ID.match(endpoint_id):
            return None
        raw: bytes | None = await self._redis.get(self._keys.webhook_endpoint(endpoint_id))
        return await self._loaded(app, raw)

    async def list(
        self, app: str, cursor: str | None = None, limit: int = 50
    ) -> tuple[builtins.list[WebhookEndpoint], str | None]:
        """Oldest first; returns the page and the cursor of the next one (None at the end)."""
        if limit < 1:
            raise ValueError("limit must be positive")
        # "(" makes the cursor exclusive; every score is 0, so lexical ranges are well defined.
        low = f"({cursor}" if cursor else "-"
        ids = await self._redis.zrangebylex(
            self._keys.webhook_endpoints(app), low, "+", start=0, num=limit + 1
        )
        page = [i.decode() for i in ids[:limit]]
        items = await self._many(app, page)
        return items, (page[-1] if len(ids) > limit else None)

    async def for_event(self, app: str, event_type: str) -> builtins.list[WebhookEndpoint]:
        """The enabled endpoints of `app` that receive `event_type`: the delivery fan-out."""
        ids = await self._redis.zrange(self._keys.webhook_endpoints(app), 0, -1)
        items = await self._many(app, [i.decode() for i in ids])
        return [e for e in items if e.enabled and e.subscribes(event_type)]

    async def count(self, app: str) -> int:
        """How many endpoints the app has, for the route layer to cap the fan-out."""
        n: int = await self._redis.zcard(self._keys.webhook_endpoints(app))
        return n

    def active_secrets(
        self, endpoint: WebhookEndpoint, now: float | None = None
    ) -> builtins.list[Secret]:
        """The secrets that sign a delivery at `now` (default: the registry's clock)."""
        return active_secrets(endpoint, self._clock() if now is None else now)

    # --- writes --------------------------------------------------------------------------------

    async def create(self, app: str, body: EndpointCreate) -> WebhookEndpoint:
        """A new endpoint with a fresh secret (shown to the app once, by the caller)."""
        now = self._clock()
        endpoint = WebhookEndpoint(
            id=new_endpoint_id(now),
            app=app,
            url=body.url,
            description=body.description,
            event_types=list(body.event_types),
            enabled=body.enabled,
            headers=dict(body.headers),
            created_at=now,
            updated_at=now,
            disabled_reason=None if body.enabled else "manual",
            secrets=[SecretVersion(secret=generate_secret(), created_at=now)],
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.webhook_endpoint(endpoint.id), self._encoder.encode(endpoint))
            pipe.zadd(self._keys.webhook_endpoints(app), {endpoint.id: 0})
            await pipe.execute()
        return endpoint

    async def update(
        self, app: str, endpoint_id: str, changes: EndpointUpdate
    ) -> WebhookEndpoint | None:
        """Applies the fields present in `changes`; None when the app has no such endpoint."""

        def apply(e: WebhookEndpoint, now: float) -> None:
            if not isinstance(changes.url, msgspec.UnsetType):
                e.url = changes.url
            if not isinstance(changes.description, msgspec.UnsetType):
                e.description = changes.description
            if not isinstance(changes.event_types, msgspec.UnsetType):
                e.event_types = list(changes.event_types)
            if not isinstance(changes.headers, msgspec.UnsetType):
                e.headers = dict(changes.headers)
            if not isinstance(changes.enabled, msgspec.UnsetType):
                _set_enabled(e, changes.enabled, "manual")

        return await self._mutate(app, endpoint_id, apply)

    async def delete(self, app: str, endpoint_id: str) -> bool:
        if await self.get(app, endpoint_id) is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.webhook_endpoint(endpoint_id))
            pipe.zrem(self._keys.webhook_endpoints(app), endpoint_id)
            pipe.srem(self._keys.webhook_endpoints_disabled, endpoint_id)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    async def rotate_secret(
        self, app: str, endpoint_id: str, overlap_seconds: float = 86_400
    ) -> WebhookEndpoint | None:
        """A new current secret (first in `secrets`); the previous ones keep signing until
        `overlap_seconds` from now at the latest, so receivers can switch without a gap."""
        if overlap_seconds < 0:
            raise ValueError("overlap_seconds must not be negative")

        def apply(e: WebhookEndpoint, now: float) -> None:
            until = now + overlap_seconds
            older = [
                SecretVersion(
                    secret=v.secret,
                    created_at=v.created_at,
                    expires_at=until if v.expires_at is None else min(v.expires_at, until),
                )
                for v in e.secrets
            ]
            fresh = SecretVersion(secret=generate_secret(), created_at=now)
            e.secrets = [fresh, *older][:MAX_SECRET_VERSIONS]

        return await self._mutate(app, endpoint_id, apply)

    async def disable(self, app: str, endpoint_id: str, reason: str) -> WebhookEndpoint | None:
        """Stops deliveries to the endpoint; `reason` tells the app why (e.g. the delivery
        engine giving up on an endpoint that keeps failing)."""
        return await self._mutate(app, endpoint_id, lambda e, _now: _set_enabled(e, False, reason))

    async def enable(self, app: str, endpoint_id: str) -> WebhookEndpoint | None:
        return await self._mutate(app, endpoint_id, lambda e, _now: _set_enabled(e, True, None))

    # --- internals -----------------------------------------------------------------------------

    async def _loaded(self, app: str, raw: bytes | None) -> WebhookEndpoint | None:
        if raw is None:
            return None
        endpoint = self._decoder.decode(raw)
        if endpoint.app != app:
            return None
        if _prune(endpoint, self._clock()):
            # Rare (once per rotation), and a secret that no longer signs should not stay at
            # rest: write the pruned record back, without touching updated_at.
            stored = await self._mutate(app, endpoint.id, None)
            return stored or endpoint
        return endpoint

    async def _many(self, app: str, ids: builtins.list[str]) -> builtins.list[WebhookEndpoint]:
        if not ids:
            return []
        raws: list[bytes | None] = await self._redis.mget(
            [self._keys.webhook_endpoint(i) for i in ids]
        )
        items = [await self._loaded(app, raw) for raw in raws]
        # An id whose record vanished was deleted between the two reads.
        return [e for e in items if e is not None]

    async def _mutate(
        self,
        app: str,
        endpoint_id: str,
        apply: Callable[[WebhookEndpoint, float], None] | None,
    ) -> WebhookEndpoint | None:
        """Compare-and-set on the endpoint's key; `apply` None only prunes expired secrets."""
        if not _ID.match(endpoint_id):
            return None
        key = self._keys.webhook_endpoint(endpoint_id)
        for _ in range(_CAS_ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw: bytes | None = await pipe.get(key)
                    if raw is None:
                        return None
                    endpoint = self._decoder.decode(raw)
                    if endpoint.app != app:
                        return None
                    now = self._clock()
                    _prune(endpoint, now)
                    if apply is not None:
                        apply(endpoint, now)
                        endpoint.updated_at = now
                        # a rotation without overlap retires the old secret at once
                        _prune(endpoint, now)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, self._encoder.encode(endpoint))
                    # The fleet's count of disabled endpoints (a /metrics gauge) follows.
                    disabled = self._keys.webhook_endpoints_disabled
                    if endpoint.enabled:
                        pipe.srem(disabled, endpoint.id)
                    else:
                        pipe.sadd(disabled, endpoint.id)
                    await pipe.execute()
                except WatchError:
                    continue
                return endpoint
        raise RuntimeError(f"webhook endpoint {endpoint_id} kept changing; gave up")


def _prune(endpoint: WebhookEndpoint, now: float) -> bool:
    """Drops secret versions whose overlap has ended; True when any was dropped."""
    kept = [v for v in endpoint.secrets if v.active(now)]
    if len(kept) == len(endpoint.secrets):
        return False
    endpoint.secrets = kept
    return True


def _set_enabled(endpoint: WebhookEndpoint, enabled: bool, reason: str | None) -> None:
    endpoint.enabled = enabled
    endpoint.disabled_reason = None if enabled else reason
