"""Fixtures for the Genlook client contract tests: a real client over real HTTP against the
emulator subprocess (the session `emulator` fixture in tests/conftest.py, reset per test)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from service.genlook import Backoff, GenlookClient, Priority

from tests.conftest import Emulator

# Short enough for fast tests, long enough for a loaded CI box.
TIMEOUT = httpx.Timeout(10.0, connect=2.0)
FAST_BACKOFF = Backoff(base=0.02, cap=0.2)


@dataclass
class RecordingHooks:
    events: list[tuple[Any, ...]] = field(default_factory=list)

    async def before_request(self, endpoint: str, priority: Priority) -> None:
        self.events.append(("before", endpoint, priority))

    async def after_response(self, endpoint: str, status: int | None, elapsed: float) -> None:
        self.events.append(("after", endpoint, status))

    async def on_rate_limited(self, endpoint: str, retry_after: float | None) -> None:
        self.events.append(("rate_limited", endpoint, retry_after))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


MakeClient = Callable[..., GenlookClient]


@pytest.fixture
async def make_client(emulator: Emulator) -> AsyncIterator[MakeClient]:
    """Build clients against the emulator (closed at teardown); kwargs override defaults."""
    made: list[GenlookClient] = []

    def make(**kw: Any) -> GenlookClient:
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("backoff", FAST_BACKOFF)
        api_key = kw.pop("api_key", emulator.api_key)
        base_url = kw.pop("base_url", emulator.base_url)
        client = GenlookClient(api_key, base_url, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> GenlookClient:
    return make_client()


@pytest.fixture(scope="session")
def person_jpeg() -> bytes:
    img = Image.new("RGB", (400, 500), (235, 228, 215))
    draw = ImageDraw.Draw(img)
    draw.ellipse((160, 50, 240, 145), fill=(224, 180, 150))
    draw.rounded_rectangle((115, 150, 285, 380), radius=35, fill=(200, 200, 200))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


@pytest.fixture
def asset_url(emulator: Emulator) -> Callable[[str], str]:
    def url(name: str = "red-tee") -> str:
        return f"{emulator.root}/_emulator/assets/{name}.png"

    return url


UNFETCHABLE = "http://127.0.0.1:9/x.png"
