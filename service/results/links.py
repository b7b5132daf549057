"""Signed, expiring links to a try-on's stored result, and the check the serving route makes.

A link is `<base>/v1/results/<tryOnId>?exp=<unix seconds>&sig=<HMAC>`: the signature covers
the try-on id and the expiry, so a plain `<img src>` needs no header, a changed id or expiry
is refused, and nobody can make a link to another try-on. HMAC-SHA256 (the stdlib `hmac`)
with the first key of RESULTS_SIGNING_KEYS; every key listed verifies, so keys rotate by
putting a new one first and dropping the old one once its links may have expired.

A link lasts until the result's retention ends (RESULTS_LINK_TTL may shorten it), so one
handed out in a webhook still loads on the last retry. With RESULTS_PUBLIC_BASE_URL the link
is the object's own address behind a CDN instead (no signature: the key is unguessable).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from redis.asyncio import Redis

from service.domain_errors import Forbidden
from service.keys import Keys
from service.settings import Settings
from service.tryons.models import StoredResult, TryOnOut, TryOnRecord, public_view


class LinkInvalid(Forbidden):
    def __init__(self) -> None:
        super().__init__("RESULT_LINK_INVALID", "This result link is not valid.")


class LinkExpired(Forbidden):
    def __init__(self) -> None:
        super().__init__("RESULT_LINK_EXPIRED", "This result link has expired.")


def _sign(key: bytes, subject: str, expires: int) -> str:
    mac = hmac.new(key, f"{subject}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _result(tryon_id: str) -> str:
    return f"result:{tryon_id}"


def _digest(key: bytes, tryon_id: str, expires: int) -> str:
    """The signature of a link to a try-on's result."""
    return _sign(key, _result(tryon_id), expires)


class ResultLinks:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._redis_key = keys.results_signing_key
        r = settings.results
        self._configured = [k.strip().encode() for k in r.signing_keys.split(",") if k.strip()]
        self._signing: list[bytes] = list(self._configured)
        gw = settings.gateway
        self._base = (r.base_url or f"http://{gw.host}:{gw.port}").rstrip("/")
        self._public_base = r.public_base_url.rstrip("/")
        self._ttl = r.link_ttl

    async def _keys(self) -> list[bytes]:
        if not self._signing:
            # No key configured: the fleet shares one random key through Redis (made once).
            await self._redis.set(self._redis_key, secrets.token_hex(32), nx=True)
            stored = await self._redis.get(self._redis_key)
            if stored is None:  # deleted between the two calls: make it again
                return await self._keys()
            self._signing = [stored]
        return self._signing

    async def url(self, tryon_id: str, stored: StoredResult, *, now: float | None = None) -> str:
        if self._public_base:
            return f"{self._public_base}/{stored.key}"
        expires = int(stored.expires_at)
        if self._ttl:
            expires = min(expires, int((now or time.time()) + self._ttl))
        sig = _digest((await self._keys())[0], tryon_id, expires)
        return f"{self._base}/v1/results/{tryon_id}?exp={expires}&sig={sig}"

    async def signed_query(self, subject: str, expires: int) -> str:
        """`exp=...&sig=...` for a link to `subject` (an upload's preview, a product image) that
        `check_subject` accepts until `expires` (unix seconds)."""
        return f"exp={expires}&sig={_sign((await self._keys())[0], subject, expires)}"

    def absolute(self, path: str) -> str:
        """`path` (starting with /) under the gateway's address in links."""
        return self._base + path

    async def view(self, record: TryOnRecord) -> TryOnOut:
        """The try-on as clients see it, its result as the gateway's link."""
        stored = record.stored_result
        if record.status != "completed" or stored is None:
            return public_view(record)
        return public_view(record, await self.url(record.id, stored))

    async def check(self, tryon_id: str, exp: str | None, sig: str | None) -> None:
        """Raises LinkInvalid (tampered, or not ours) or LinkExpired."""
        await self.check_subject(_result(tryon_id), exp, sig)

    async def check_subject(self, subject: str, exp: str | None, sig: str | None) -> None:
        """Raises LinkInvalid (tampered, or not ours) or LinkExpired."""
        if not exp or not sig or not exp.isdigit() or len(exp) > 12:
            raise LinkInvalid()
        expires = int(exp)
        if not any(
            hmac.compare_digest(_sign(key, subject, expires), sig) for key in await self._keys()
        ):
            raise LinkInvalid()
        if expires < time.time():
            raise LinkExpired()
