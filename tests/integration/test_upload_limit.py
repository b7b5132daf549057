"""GATEWAY_MAX_UPLOAD_BYTES is the largest photo file accepted, on both upload paths: the
gateway app in process on the test Redis database."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from service.app import create_app
from service.settings import Settings

from tests.conftest import TEST_REDIS_URL

KEY = "sk_test_upload_limit_0123456789"
LIMIT = 50_000


def _photo(size: int) -> bytes:
    """A JPEG of noise, `size` pixels square (noise does not compress: ~size² / 2 bytes)."""
    buf = io.BytesIO()
    Image.merge("RGB", [Image.effect_noise((size, size), 80)] * 3).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
async def client(redis: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    env = {"REDIS_URL": TEST_REDIS_URL, "GATEWAY_SECRET_KEYS": f"{KEY}=shop",
           "GATEWAY_MAX_UPLOAD_BYTES": str(LIMIT)}  # fmt: skip
    async with AsyncTestClient(app=create_app(Settings.from_env(env))) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        yield c


async def test_the_upload_cap_is_the_setting(client: AsyncTestClient[Any], redis: Any) -> None:
    small, big = _photo(100), _photo(400)
    assert len(small) < LIMIT < len(big) < 10 * 1024 * 1024
    r = await client.post("/v1/images", files={"file": ("s.jpg", small, "image/jpeg")})
    assert r.status_code == 201, r.text
    before = sorted(await redis.keys("*"))  # the photo, its bytes, its upload job
    r = await client.post("/v1/images", files={"file": ("b.jpg", big, "image/jpeg")})
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE"), r.text
    assert str(LIMIT) in r.json()["message"]
    tryon = {"products": [{"title": "tee", "images": [{"source": {"url": "https://e.com/t.png"}}]}],
             "person": {"image": {"source": {"fileKey": "me"}}}}  # fmt: skip
    r = await client.post(
        "/v1/try-ons",
        files={"data": (None, json.dumps(tryon)), "me": ("b.jpg", big, "image/jpeg")},
    )
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE"), r.text
    assert sorted(await redis.keys("*")) == before  # nothing written by the refused ones


@pytest.mark.parametrize("value", ["0", str(10 * 1024 * 1024 + 1)])
def test_a_cap_above_genlooks_limit_stops_the_start(value: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_"):
        Settings.from_env({"GATEWAY_MAX_UPLOAD_BYTES": value})
