"""Key digest -> key and app, with a short in-process cache in front of the registry.

Every request authenticates, so lookups must not cost a Redis round trip each: a resolved key
(or a miss) and an app's policy are remembered for `ttl` seconds. That bounds how long a revoked
key or a changed policy keeps working on a gateway (documented: 5 s by default). Keys set in
the environment (`GATEWAY_SECRET_KEYS`) resolve without Redis at all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TypeVar

from service.access.models import App, KeyInfo
from service.access.registry import AppRegistry, digest
from service.redis_conn import STORE_ERRORS

_MAX_ENTRIES = 50_000
V = TypeVar("V")


class KeyRing:
    def __init__(
        self, static: Mapping[str, str], registry: AppRegistry, *, ttl: float = 5.0
    ) -> None:
        # digest -> app id, from settings: secret keys of apps without a stored policy.
        self._static = {
            d: KeyInfo(key_id="env", app=app, kind="secret", hint="sk_(env)")
            for d, app in static.items()
        }
        self._registry = registry
        self._ttl = ttl
        self._keys: dict[str, tuple[float, KeyInfo | None]] = {}
        self._apps: dict[str, tuple[float, App | None]] = {}
        self._origins: tuple[float, frozenset[str]] = (0.0, frozenset())

    async def lookup(self, key: str) -> tuple[KeyInfo, App | None] | None:
        d = digest(key)
        info = self._static.get(d)
        if info is not None:
            return info, None
        now = time.monotonic()
        cached = self._keys.get(d)
        if cached is None or cached[0] <= now:
            found = await self._registry.resolve(d)
            _bounded(self._keys)[d] = (now + self._ttl, found)
        else:
            found = cached[1]
        if found is None:
            return None
        app = await self.app(found.app)
        # A key whose app was deleted is dead.
        return (found, app) if app is not None else None

    async def app(self, app_id: str) -> App | None:
        now = time.monotonic()
        cached = self._apps.get(app_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        app = await self._registry.get(app_id)
        _bounded(self._apps)[app_id] = (now + self._ttl, app)
        return app

    async def allowed_origins(self) -> frozenset[str]:
        """Every app's allowed origins: the preflight answers for these (the request itself
        is then checked against its own app's list)."""
        now = time.monotonic()
        if self._origins[0] > now:
            return self._origins[1]
        try:
            apps = await self._registry.all_apps()
        except STORE_ERRORS:
            # Asked by the edge, outside the app's error handling: the last known origins (none
            # before the first read), so a browser can still read the 503 its request gets.
            return self._origins[1]
        origins = frozenset(origin for app in apps for origin in app.policy.allowed_origins)
        self._origins = (now + self._ttl, origins)
        return origins


def _bounded(cache: dict[str, V]) -> dict[str, V]:
    # A flood of random keys must not grow memory without bound; starting over is cheap.
    if len(cache) >= _MAX_ENTRIES:
        cache.clear()
    return cache
