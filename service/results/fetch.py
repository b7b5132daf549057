"""Reading a result image from Genlook's temporary URL, bounded in time and size."""

from __future__ import annotations

import asyncio

import httpx

from service.domain_errors import InvalidInput
from service.imaging import sniff

# Genlook's URL answered that the image is not there (expired link, erased): reading the
# generation again gives a fresh URL, if Genlook still holds the image.
_GONE = frozenset({401, 403, 404, 410})


class ResultGone(Exception):
    """The URL no longer serves the image."""


class FetchFailed(Exception):
    """A transient failure (network, 5xx, too large, not an image): tried again later."""


async def fetch_result(
    http: httpx.AsyncClient, url: str, *, max_bytes: int, within: float
) -> tuple[bytes, str]:
    """(bytes, content type) of the image at `url`, all of it read `within` seconds (httpx's
    timeouts bound each read only); the content type is read from the bytes, not trusted
    from the header."""
    try:
        async with asyncio.timeout(within), http.stream("GET", url) as response:
            if response.status_code in _GONE:
                raise ResultGone(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise FetchFailed(f"HTTP {response.status_code}")
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise FetchFailed(f"larger than {max_bytes} bytes")
    except (httpx.HTTPError, TimeoutError) as exc:
        raise FetchFailed(type(exc).__name__) from exc
    try:
        kind = sniff(bytes(data[:4096]))
    except InvalidInput:
        raise FetchFailed("not a JPEG, PNG, WebP or HEIC image") from None
    return bytes(data), kind
