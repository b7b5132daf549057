"""The object store that holds result images, and its index in Redis.

One library for every backend: obstore (`LocalStore` for a directory, the embedded default;
`S3Store`, `GCSStore`, `AzureStore` from a URL). The index says which objects exist, until
when (a sorted set by expiry: the sweeper's list) and their size (the stored-bytes gauge), so
nothing has to list a bucket.

Order of writes: the object, then its index entry, then the try-on record that references it.
A crash between them leaves an object the next attempt overwrites (same key) or an index entry
the sweeper removes at expiry; never a record pointing at nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, from_url
from redis.asyncio import Redis

from service.keys import Keys
from service.namespacing import part
from service.settings import ResultSettings
from service.tryons.models import StoredResult

if TYPE_CHECKING:
    from obstore.store import ObjectStore

# A missing object: obstore raises its NotFoundError from some stores and Python's
# FileNotFoundError from others (S3's HEAD/GET 404).
_MISSING = (NotFoundError, FileNotFoundError)

_INDEX = """
local added = redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
if added == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('INCRBY', KEYS[3], ARGV[3])
end
return added
"""

_UNINDEX = """
local removed = 0
for _, key in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], key) == 1 then
    local size = tonumber(redis.call('HGET', KEYS[2], key) or '0')
    redis.call('HDEL', KEYS[2], key)
    redis.call('DECRBY', KEYS[3], size)
    removed = removed + 1
  end
end
return removed
"""


class StoreUnavailable(Exception):
    """The object store refused or did not answer in time (the copy is tried again)."""


def open_store(settings: ResultSettings) -> ObjectStore:
    """The store RESULTS_STORE_URL names: a plain path or file:// is a directory (made if
    missing); any other URL is a bucket, with obstore's standard environment variables."""
    url = settings.store_url
    if "://" not in url:
        return LocalStore(Path(url).resolve(), mkdir=True)
    if url.startswith("file://"):
        return from_url(url, mkdir=True)
    seconds = f"{int(settings.store_timeout)}s"
    # Client options given here replace those obstore reads from the environment: the one
    # that matters for a loopback or MinIO endpoint is carried over.
    allow_http = os.environ.get("AWS_ALLOW_HTTP", os.environ.get("ALLOW_HTTP", "")).lower()
    return from_url(
        url,
        client_options={
            "timeout": seconds,
            "connect_timeout": "5s",
            "allow_http": allow_http == "true",
        },
        # The copy has its own bounded retries (RESULTS_COPY_ATTEMPTS); obstore's default
        # retries for up to 3 minutes within one call, longer than a job attempt may wait.
        retry_config={
            "max_retries": 2,
            "retry_timeout": timedelta(seconds=settings.store_timeout),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        },
    )


def _first_line(exc: Exception) -> str:
    # obstore's messages carry a multi-line debug dump after the first line.
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def object_key(app: str, tryon_id: str) -> str:
    """Where a try-on's result is stored. Try-on ids carry 120 random bits, so the key cannot
    be guessed (what RESULTS_PUBLIC_BASE_URL relies on), and a resumed copy reuses it."""
    return f"results/{part(app)}/{tryon_id}"


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


class ResultObjects:
    def __init__(self, redis: Redis, keys: Keys, settings: ResultSettings) -> None:
        self._redis = redis
        self._keys = keys
        self._store = open_store(settings)
        # LocalStore keeps no per-object attributes; buckets serve the content type themselves
        # when a CDN reads them directly (RESULTS_PUBLIC_BASE_URL).
        self._attributes = not isinstance(self._store, LocalStore)
        self._index = redis.register_script(_INDEX)
        self._unindex = redis.register_script(_UNINDEX)

    async def put(
        self, key: str, data: bytes, *, content_type: str, expires_at: float
    ) -> StoredResult:
        """Write the object (overwriting a partial earlier try) and index it."""
        attributes: Any = {"Content-Type": content_type} if self._attributes else None
        try:
            await obstore.put_async(self._store, key, data, attributes=attributes)
        except Exception as exc:  # obstore raises its own tree and OSError subclasses alike
            raise StoreUnavailable(_first_line(exc)) from exc
        k = self._keys
        await self._index(
            keys=[k.results_expiry, k.results_sizes, k.results_bytes],
            args=[key, expires_at, len(data)],
        )
        return StoredResult(
            key=key,
            content_type=content_type,
            size=len(data),
            etag=etag_of(data),
            expires_at=expires_at,
        )

    async def read(self, key: str) -> AsyncIterator[bytes] | None:
        """The object's bytes in chunks, or None when it is gone (erased, swept)."""
        try:
            result = await obstore.get_async(self._store, key)
        except _MISSING:
            return None
        except Exception as exc:
            raise StoreUnavailable(_first_line(exc)) from exc

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream():
                yield bytes(chunk)

        return chunks()

    async def delete(self, keys: list[str]) -> int:
        """Delete objects and their index entries; returns how many were indexed."""
        if not keys:
            return 0
        for key in keys:
            # Already gone (a sweep and an erase racing): the index entry still goes.
            with contextlib.suppress(*_MISSING):
                await obstore.delete_async(self._store, key)
        k = self._keys
        removed = await self._unindex(
            keys=[k.results_expiry, k.results_sizes, k.results_bytes], args=keys
        )
        return int(removed)

    async def sweep(self, now: float, *, batch: int = 100) -> int:
        """Delete every object whose retention ended before `now`; returns how many."""
        total = 0
        while True:
            due = await self._redis.zrangebyscore(self._keys.results_expiry, 0, now, 0, batch)
            if not due:
                return total
            total += await self.delete([d.decode() for d in due])
