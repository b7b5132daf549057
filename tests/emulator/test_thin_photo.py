"""A photo too thin to crop to 4:5 (found by the OpenAPI fuzz run: the emulator answered 500
to a worker's upload of a 1-pixel-high photo)."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from tests.emulator.conftest import jpeg, upload


def test_a_one_pixel_high_photo_is_cropped_not_a_500(api: httpx.Client) -> None:
    preview = httpx.get(upload(api, jpeg(width=40, height=1))["imageUrl"])
    assert preview.status_code == 200
    assert Image.open(io.BytesIO(preview.content)).size == (1, 1)
