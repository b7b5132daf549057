"""Auth, credits, image upload and the files it serves."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from tests.conftest import Emulator, assert_error
from tests.emulator.conftest import jpeg, png, upload


def test_missing_and_invalid_key(emulator: Emulator) -> None:
    r = httpx.get(f"{emulator.base_url}/account/credits")
    assert_error(r, 401, "MISSING_API_KEY")
    r = httpx.get(f"{emulator.base_url}/account/credits", headers={"x-api-key": "gk_nope"})
    assert_error(r, 401, "INVALID_API_KEY")
    # Bearer is not how Genlook authenticates.
    r = httpx.get(
        f"{emulator.base_url}/account/credits",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    )
    assert_error(r, 401, "MISSING_API_KEY")


def test_credits(api: httpx.Client, emulator: Emulator) -> None:
    assert api.get("/account/credits").json() == {"creditBalance": 1000}
    emulator.reset(credits=7)
    assert api.get("/account/credits").json() == {"creditBalance": 7}


def test_upload_returns_path_like_id_and_preview(api: httpx.Client) -> None:
    body = upload(api, jpeg(400, 600), externalUserId="u1", keepForDays="3")
    assert set(body) == {"imageId", "imageUrl"}
    assert body["imageId"].startswith("ephemeral/customer/ttl-3d/")
    assert body["imageId"].endswith(".jpeg")
    preview = httpx.get(body["imageUrl"])
    assert preview.status_code == 200
    img = Image.open(io.BytesIO(preview.content))
    assert img.format == "JPEG"
    assert img.size == (400, 500)  # 4:5 crop by default


def test_upload_crop_false_keeps_framing_and_png_accepted(api: httpx.Client) -> None:
    body = upload(api, png(64, 64), crop="false")
    img = Image.open(io.BytesIO(httpx.get(body["imageUrl"]).content))
    assert img.size == (64, 64)


def test_upload_deprecated_fields(api: httpx.Client, emulator: Emulator) -> None:
    body = upload(api, customerId="legacy-user", retentionDays="1")
    assert "/ttl-1d/" in body["imageId"]
    api.delete("/customers/legacy-user")
    assert httpx.get(body["imageUrl"]).status_code == 404


def test_upload_heic_accepted_by_brand(api: httpx.Client) -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    body = upload(api, heic)
    assert body["imageId"].endswith(".heic")


def test_upload_errors(api: httpx.Client) -> None:
    assert_error(api.post("/images/upload", data={"crop": "true"}), 400, "FILE_REQUIRED")
    assert_error(api.post("/images/upload", json={"file": "x"}), 400, "FILE_REQUIRED")
    r = api.post(
        "/images/upload", files={"file": ("a.txt", b"hello world, not an image", "text/plain")}
    )
    assert_error(r, 400, "INVALID_IMAGE")
    r = api.post("/images/upload", files={"file": ("a.jpg", b"", "image/jpeg")})
    assert_error(r, 400, "INVALID_IMAGE")
    truncated = jpeg()[:200]
    r = api.post("/images/upload", files={"file": ("a.jpg", truncated, "image/jpeg")})
    assert_error(r, 400, "INVALID_IMAGE")
    r = api.post(
        "/images/upload", files={"file": ("a.jpg", jpeg(), "image/jpeg")}, data={"keepForDays": "5"}
    )
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "keepForDays"
    r = api.post(
        "/images/upload", files={"file": ("a.jpg", jpeg(), "image/jpeg")}, data={"keepForDays": "x"}
    )
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert body["details"] == [{"path": "keepForDays", "message": "Expected number, received nan"}]


def test_upload_over_10_mb_is_invalid_image(api: httpx.Client, emulator: Emulator) -> None:
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (11 * 1024 * 1024)
    r = api.post("/images/upload", files={"file": ("big.jpg", big, "image/jpeg")})
    assert_error(r, 400, "INVALID_IMAGE")
    assert emulator.counters().get("uploads") == 0


def test_upload_image_expires_with_clock(api: httpx.Client, emulator: Emulator) -> None:
    emulator.reset(resultUrlLifetime=10 * 86400)  # URLs outlive the file: its expiry shows
    body = upload(api, keepForDays="1")
    emulator.control("POST", "clock/advance", {"seconds": 86400 + 1})
    assert httpx.get(body["imageUrl"]).status_code == 404


def test_file_urls_are_signed_and_expire_after_an_emulator_hour(
    api: httpx.Client, emulator: Emulator
) -> None:
    url = upload(api)["imageUrl"]
    assert httpx.get(url).status_code == 200
    assert_error(httpx.get(url.replace("signature=", "signature=x")), 403, "URL_SIGNATURE_INVALID")
    assert_error(httpx.get(url.split("?")[0]), 403, "URL_SIGNATURE_INVALID")
    emulator.control("POST", "clock/advance", {"seconds": 3600 + 1})
    assert_error(httpx.get(url), 403, "URL_EXPIRED")


def test_upload_webp(api: httpx.Client) -> None:
    out = io.BytesIO()
    Image.new("RGB", (80, 100), (10, 200, 10)).save(out, format="WEBP")
    body = upload(api, out.getvalue())
    assert Image.open(io.BytesIO(httpx.get(body["imageUrl"]).content)).format == "JPEG"
