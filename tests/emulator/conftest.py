"""Helpers for the emulator suite: plain httpx against the emulator subprocess."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Emulator


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.base_url, headers={"x-api-key": emulator.api_key}, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
def asset_url(emulator: Emulator) -> str:
    return f"{emulator.root}/_emulator/assets/red-tee.png"


def jpeg(
    width: int = 400, height: int = 600, color: tuple[int, int, int] = (90, 120, 200)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


def png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 0, 0, 255)).save(out, format="PNG")
    return out.getvalue()


def upload(api: httpx.Client, data: bytes | None = None, **fields: str) -> dict[str, Any]:
    r = api.post(
        "/images/upload", files={"file": ("me.jpg", data or jpeg(), "image/jpeg")}, data=fields
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def try_on_body(image_id: str, product: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"products": [product], "person": {"image": {"source": {"id": image_id}}}, **extra}


def inline_product(url: str, external_id: str | None = "shirt-42", **extra: Any) -> dict[str, Any]:
    product: dict[str, Any] = {"title": "Red tee", "images": [{"source": {"url": url}}], **extra}
    if external_id is not None:
        product["externalId"] = external_id
    return product


def wait_terminal(api: httpx.Client, generation_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.get(f"/generations/{generation_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
        time.sleep(0.02)
    raise AssertionError(f"generation {generation_id} did not finish")
