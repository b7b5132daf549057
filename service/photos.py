"""Person photos: cleaning, storage until uploaded, and one upstream upload per photo.

Every photo, from `POST /v1/images` or a multipart try-on, goes through `PhotoStore.save`, which
keeps only what `service.imaging.clean_photo` re-encoded (pixels, no metadata) and hashes that.
A photo sent to `POST /v1/images` gets a gateway image id at once. Its bytes stay in Redis for
a bounded window (a day by default), long enough to upload it again should Genlook lose its
copy; the Genlook imageId is cached under a dedupe key made of the app, the content hash, the
crop flag, the end user and the retention, so identical uploads (and any number of try-ons using
them) reach Genlook once per retention window, and one app's erase never takes a photo another
app relies on. The cached imageId is kept per upstream account (service/namespacing.py): it
means nothing to another one. A fleet-wide lock makes concurrent uploads of the same photo
share one upstream call.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import msgspec
from redis.asyncio import Redis

from service.byte_budget import ByteBudget
from service.imaging import finish_photo, open_photo
from service.keys import Keys
from service.metrics import MetricsWriter
from service.settings import MAX_PHOTO_BYTES

DEFAULT_KEEP_DAYS = 7
_LOCK_POLL = 0.05
# Compare-and-delete: a holder whose lease ran out must not release its successor's lock, and
# a try-on told that an old imageId is gone must not drop the new one another try-on uploaded.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class StoredImage(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    app: str
    digest: str
    dedupe_key: str
    content_type: str
    size: int
    crop: bool
    external_user_id: str | None = None
    keep_for_days: int = DEFAULT_KEEP_DAYS
    created_at: float


def dedupe_key(
    app: str, digest: str, crop: bool, external_user_id: str | None, keep_for_days: int
) -> str:
    # JSON, not a join: an app or user id may contain any separator.
    raw = msgspec.json.encode([app, digest, crop, external_user_id, keep_for_days])
    return hashlib.sha256(raw).hexdigest()[:40]


class PhotoStore:
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(StoredImage)

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        lifetime: Callable[[float], float],
        *,
        bytes_ttl: float,
        lock_ttl: float,
        lock_wait: float,
        metrics: MetricsWriter,
        max_image_pixels: int,
        decode_budget: ByteBudget,
        cleaning_threads: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        # Genlook days -> our seconds (shortened, so our record expires before Genlook's copy).
        self._lifetime = lifetime
        self._bytes_ttl_ms = int(bytes_ttl * 1000)
        # The lease outlives the slowest upload (timeouts included), so a holder that died
        # blocks others only that long; waiters give up sooner and retry later.
        self._lock_ttl_ms = int(lock_ttl * 1000)
        self._lock_wait = lock_wait
        self._delete_if = redis.register_script(_DELETE_IF)
        self._metrics = metrics
        self._max_pixels = max_image_pixels
        # Decoding and encoding photos is CPU work done in threads (as many as the container
        # has CPUs, less one left to the event loop, so a burst of uploads does not starve
        # every other request); the memory they take is bounded by the byte budget.
        self._cleaning = anyio.CapacityLimiter(cleaning_threads)
        self._decode_budget = decode_budget

    async def _clean(self, data: bytes) -> tuple[bytes, str]:
        """The photo's re-encoded bytes and their type (INVALID_IMAGE / IMAGE_TOO_LARGE;
        OverBudget when decoding it needs more memory than the whole budget, BudgetBusy when
        the budget stayed taken too long)."""
        opened = await anyio.to_thread.run_sync(
            functools.partial(
                open_photo, data, max_pixels=self._max_pixels, max_bytes=MAX_PHOTO_BYTES
            ),
            limiter=self._cleaning,
        )
        # The thread is not abandoned on cancellation, so the bytes stay held while it runs.
        async with self._decode_budget.hold(opened.peak_bytes):
            clean = await anyio.to_thread.run_sync(
                finish_photo, opened, MAX_PHOTO_BYTES, limiter=self._cleaning
            )
        return clean.data, clean.content_type

    async def save(
        self,
        app: str,
        data: bytes,
        *,
        crop: bool = True,
        external_user_id: str | None = None,
        keep_for_days: int | None = None,
    ) -> StoredImage:
        data, content_type = await self._clean(data)
        digest = hashlib.sha256(data).hexdigest()
        days = keep_for_days or DEFAULT_KEEP_DAYS
        dk = dedupe_key(app, digest, crop, external_user_id, days)
        image = StoredImage(
            id="img_" + secrets.token_urlsafe(18),
            app=app,
            digest=digest,
            dedupe_key=dk,
            content_type=content_type,
            size=len(data),
            crop=crop,
            external_user_id=external_user_id,
            keep_for_days=days,
            created_at=time.time(),
        )
        ttl_ms = int(self._lifetime(days) * 1000)
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(k.image(image.id), self._encoder.encode(image), px=ttl_ms)
            pipe.set(k.image_bytes(dk), data, px=min(ttl_ms, self._bytes_ttl_ms))
            if external_user_id:
                pipe.sadd(k.customer_images(app, external_user_id), image.id)
                pipe.pexpire(k.customer_images(app, external_user_id), ttl_ms)
            await pipe.execute()
        return image

    @classmethod
    def decode(cls, raw: bytes) -> StoredImage:
        return cls._decoder.decode(raw)

    async def get(self, app: str, image_id: str) -> StoredImage | None:
        raw: bytes | None = await self._redis.get(self._keys.image(image_id))
        if raw is None:
            return None
        image = self._decoder.decode(raw)
        # Another app's image id is indistinguishable from an unknown one.
        return image if image.app == app else None

    async def preview(self, image_id: str) -> tuple[StoredImage, bytes] | None:
        """The photo and its cleaned bytes while they are kept (`bytes_until`), for a preview
        link (its signature is the credential: any app's image)."""
        raw: bytes | None = await self._redis.get(self._keys.image(image_id))
        if raw is None:
            return None
        image = self._decoder.decode(raw)
        data: bytes | None = await self._redis.get(self._keys.image_bytes(image.dedupe_key))
        return None if data is None else (image, data)

    def bytes_until(self, image: StoredImage) -> float:
        """When the photo's bytes may be gone (the end of a preview link)."""
        return image.created_at + self._bytes_ttl_ms / 1000

    async def upstream_id(
        self, account: str, image: StoredImage, upload: Callable[[bytes], Awaitable[str]]
    ) -> str:
        """The Genlook imageId of this photo in `account`, uploading it once across the fleet."""
        k = self._keys
        dk = image.dedupe_key
        token = secrets.token_hex(8)
        give_up = time.monotonic() + self._lock_wait
        while True:
            known: bytes | None = await self._redis.get(k.upstream_photo(account, dk))
            if known is not None:
                await self._metrics.add("photo_uploads", result="hit")
                return known.decode()
            lock = k.upstream_photo_lock(account, dk)
            if await self._redis.set(lock, token, nx=True, px=self._lock_ttl_ms):
                break
            if time.monotonic() > give_up:
                raise PhotoBusy(image.id)
            await asyncio.sleep(_LOCK_POLL)
        try:
            data: bytes | None = await self._redis.get(k.image_bytes(dk))
            if data is None:
                raise PhotoGone(image.id)
            upstream = await upload(data)
            await self._metrics.add("photo_uploads", result="uploaded")
            ttl = int(self._lifetime(image.keep_for_days) * 1000)
            await self._redis.set(k.upstream_photo(account, dk), upstream, px=ttl)
            return upstream
        finally:
            await self._delete_if(keys=[lock], args=[token])

    async def forget_upstream(self, account: str, image: StoredImage, gone: str) -> None:
        """Genlook said it no longer has imageId `gone`: forget it, unless the cache already
        holds another one. Every try-on that was holding `gone` reports the same loss; only
        the first one's forgetting counts, so the one re-upload it causes serves them all."""
        key = self._keys.upstream_photo(account, image.dedupe_key)
        await self._delete_if(keys=[key], args=[gone])

    async def erase_customer(self, app: str, external_user_id: str, accounts: Sequence[str]) -> int:
        """Delete every local trace of one end user's photos, the references to their copies in
        `accounts` (the upstream accounts the erase reached, by digest) included; returns how
        many images."""
        k = self._keys
        members: set[bytes] = await self._redis.smembers(  # type: ignore[misc]
            k.customer_images(app, external_user_id)
        )
        ids = [m.decode() for m in members]
        for image_id in ids:
            image = await self.get(app, image_id)
            keys = [k.image(image_id)]
            if image is not None:
                dk = image.dedupe_key
                keys += [k.upstream_photo(account, dk) for account in accounts]
                keys.append(k.image_bytes(dk))
            await self._redis.delete(*keys)
        await self._redis.delete(k.customer_images(app, external_user_id))
        return len(ids)


class PhotoBusy(Exception):
    """Another process is uploading this photo and has not finished yet; ask again later."""


class PhotoGone(LookupError):
    """The photo's bytes expired before it could be uploaded (again) upstream."""
