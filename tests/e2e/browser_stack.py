"""What the browser tests of the JS client and the demo share: headless Chromium (Debian's,
driven by Playwright; never a downloaded browser), a browser app with its keys and allowed
origins in the test Redis, and tiny static sites on other loopback ports that stand for a
merchant's storefront (an allowed origin) and a stranger's page (not allowed)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from redis.asyncio import Redis
from service.access.models import Policy
from service.access.registry import AppRegistry
from service.keys import Keys

from tests.e2e.conftest import photo_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"no Chromium at {CHROMIUM} (Debian package `chromium`: apt-get install -y chromium)",
)
# Playwright waits, in milliseconds.
WAIT_MS = 20_000
# Keys and origins are cached this long by the gateway; tests create apps on a fresh database.
KEY_CACHE_SECONDS = "0.2"


@dataclass(frozen=True)
class BrowserApp:
    id: str
    secret_key: str
    publishable_key: str


async def create_browser_app(redis: Redis, app_id: str, *origins: str) -> BrowserApp:
    registry = AppRegistry(redis, Keys())
    _, secret, publishable = await registry.create_app(
        app_id, Policy(allowed_origins=tuple(origins)), app_id=app_id
    )
    return BrowserApp(id=app_id, secret_key=secret, publishable_key=publishable)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>storefront</title><p>storefront</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def static_site() -> Iterator[str]:
    """An empty page on its own loopback port: a distinct origin for the browser."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def jpeg_file(name: str = "me.jpg") -> dict[str, Any]:
    """A generated JPEG for `set_input_files`."""
    return {"name": name, "mimeType": "image/jpeg", "buffer": photo_bytes(size=(320, 400))}
