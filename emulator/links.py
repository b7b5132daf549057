"""Signed, expiring file URLs, as Genlook's storage hands out (GUESS: Genlook says only that
`resultImageUrl` is temporary and `imageUrl` short-lived; signed cloud-storage URLs are the usual
way). A URL carries its expiry in emulator seconds and an HMAC over the key and the expiry;
every read of a generation or upload signs afresh, so reading `GET /generations/:id` again
gives a URL that loads again (while the file itself is kept: `keepForDays`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote

# One emulator hour by default (`--result-url-lifetime`, the reset's `resultUrlLifetime`).
DEFAULT_URL_LIFETIME = 3600.0


def _sig(secret: bytes, key: str, expires: int) -> str:
    mac = hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


class FileLinks:
    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def url(self, base_url: str, key: str, *, now: float, lifetime: float) -> str:
        expires = int(now + lifetime)
        sig = _sig(self._secret, key, expires)
        return f"{base_url}/_emulator/files/{key}?expires={expires}&signature={quote(sig)}"

    def check(self, key: str, expires: str | None, signature: str | None, now: float) -> str | None:
        """None when the URL may be served, else the refusal's code."""
        if not expires or not signature or not expires.isdigit():
            return "URL_SIGNATURE_INVALID"
        if not hmac.compare_digest(_sig(self._secret, key, int(expires)), signature):
            return "URL_SIGNATURE_INVALID"
        if int(expires) < now:
            return "URL_EXPIRED"
        return None
