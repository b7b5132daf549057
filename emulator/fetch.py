"""Downloads of image URLs, restricted to loopback.

The emulator must never reach the internet (CI machines cannot, and a test must not depend on
it), so any other host fails the same way an unreachable one would.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx

from emulator.images import MAX_IMAGE_BYTES

FETCH_TIMEOUT = 3.0


class FetchError(Exception):
    pass


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class LoopbackFetcher:
    def __init__(self) -> None:
        self._client = httpx.AsyncClient(timeout=FETCH_TIMEOUT, trust_env=False)

    async def fetch(self, url: str) -> bytes:
        if not is_loopback(url):
            raise FetchError(f"Could not download '{url}': host not reachable.")
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(f"Could not download '{url}': HTTP {response.status_code}.")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > MAX_IMAGE_BYTES:
                        raise FetchError(f"Could not download '{url}': larger than 10 MB.")
                return bytes(data)
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not download '{url}': {type(exc).__name__}.") from None

    async def aclose(self) -> None:
        await self._client.aclose()
