"""Generations: creation in every accepted shape, lifecycle, results, credits, erase."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import httpx
from PIL import Image

from tests.conftest import Emulator, assert_error
from tests.emulator.conftest import (
    inline_product,
    jpeg,
    png,
    try_on_body,
    upload,
    wait_terminal,
)

DAY = 86400


def _internal(emulator: Emulator, generation_id: str) -> dict[str, Any]:
    result: dict[str, Any] = emulator.control("GET", f"generations/{generation_id}")
    return result


def test_async_lifecycle_and_real_result(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    image_id = upload(api)["imageId"]
    r = api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)))
    assert r.status_code == 200, r.text
    created = r.json()
    assert set(created) == {"generationId", "status", "productExternalId"}
    assert created["status"] == "PENDING"
    assert created["productExternalId"] == "shirt-42"
    assert re.fullmatch(r"cm[a-z0-9]{20,}", created["generationId"])

    first = api.get(f"/generations/{created['generationId']}").json()
    assert first["status"] in ("PENDING", "PROCESSING")
    assert "resultImageUrl" not in first
    done = wait_terminal(api, created["generationId"])
    assert done["status"] == "COMPLETED", done
    assert done["updatedAt"] > done["createdAt"]
    assert "errorCode" not in done
    result = httpx.get(done["resultImageUrl"])
    assert result.status_code == 200
    img = Image.open(io.BytesIO(result.content))
    assert img.format == "JPEG"
    # The red tee was pasted onto the blue person photo.
    red = sum(1 for p in img.convert("RGB").get_flattened_data() if p[0] > 150 and p[2] < 100)
    assert red > 1000

    history = [h["status"] for h in _internal(emulator, created["generationId"])["history"]]
    assert history == ["PENDING", "PROCESSING", "COMPLETED"]
    assert api.get("/account/credits").json() == {"creditBalance": 999}
    counters = emulator.counters()
    assert counters["generationsCreated"] == 1
    assert counters["creditsSpent"] == 1


def test_inline_and_one_shot_products(api: httpx.Client, asset_url: str) -> None:
    image_id = upload(api)["imageId"]
    r = api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)))
    product = api.get(f"/products/{r.json()['productExternalId']}").json()
    assert product["validForDays"] == 15
    assert product["lastUsedAt"] is not None

    r = api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url, None)))
    anon = r.json()["productExternalId"]
    assert re.fullmatch(r"_anon_[0-9a-f]{32}", anon)
    assert api.get(f"/products/{anon}").json()["validForDays"] == 7
    listed = [p["externalId"] for p in api.get("/products").json()["items"]]
    assert listed == ["shirt-42"]


def test_reference_then_register(api: httpx.Client, emulator: Emulator, asset_url: str) -> None:
    image_id = upload(api)["imageId"]
    ref = try_on_body(image_id, {"externalId": "shirt-42"})
    assert_error(api.post("/try-on", json=ref), 404, "PRODUCT_NOT_FOUND")
    assert api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url))).is_success
    assert api.post("/try-on", json=ref).is_success
    # Inline products live 15 days from last use.
    emulator.control("POST", "clock/advance", {"seconds": 16 * DAY})
    upload_again = upload(api)["imageId"]
    assert_error(
        api.post("/try-on", json=try_on_body(upload_again, {"externalId": "shirt-42"})),
        404,
        "PRODUCT_NOT_FOUND",
    )


def test_catalog_product_keeps_valid_for_days_on_inline_use(
    api: httpx.Client, asset_url: str
) -> None:
    api.post("/products", json={"externalId": "cat", "imageUrls": [asset_url]})
    image_id = upload(api)["imageId"]
    api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url, "cat")))
    product = api.get("/products/cat").json()
    assert product["validForDays"] is None
    assert product["expiresAt"] is None


def test_deprecated_shapes_are_normalised(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    image_id = upload(api)["imageId"]
    legacy = {
        "product": {"externalId": "old", "title": "Tee", "images": [{"url": asset_url}]},
        "customer": {"id": image_id},
        "customerId": "user-1",
        "useWatermark": False,
        "retentionDays": 3,
    }
    r = api.post("/try-on", json=legacy)
    assert r.status_code == 200, r.text
    view = _internal(emulator, r.json()["generationId"])
    assert view["externalUserId"] == "user-1"
    assert view["watermark"] is False
    assert view["keepForDays"] == 3
    assert view["product"]["images"][0]["sourceUrl"] == asset_url

    source_form = {
        "products": [{"externalId": "old"}],
        "customer": {"source": {"id": image_id}},
        "output": {"keepForDays": 1, "aiLabel": True},
    }
    r = api.post("/try-on", json=source_form)
    assert r.status_code == 200, r.text
    view = _internal(emulator, r.json()["generationId"])
    assert view["watermark"] is True
    assert view["keepForDays"] == 1
    assert view["aiLabel"] is True


def test_try_on_errors(api: httpx.Client, emulator: Emulator, asset_url: str) -> None:
    image_id = upload(api)["imageId"]
    alpha = {"productId": "p", "customerImageId": image_id}
    assert_error(api.post("/try-on", json=alpha), 400, "CUSTOMER_IMAGE_REQUIRED")
    no_images = try_on_body(image_id, {"externalId": "n", "title": "No pics"})
    assert_error(api.post("/try-on", json=no_images), 400, "PRODUCT_IMAGES_REQUIRED")
    assert_error(
        api.post("/try-on", json=try_on_body(image_id, {})), 400, "PRODUCT_IMAGES_REQUIRED"
    )
    bad_entry = try_on_body(image_id, {"title": "x", "images": [{"source": {}}]})
    assert_error(api.post("/try-on", json=bad_entry), 400, "INVALID_IMAGE_INPUT")
    reserved = try_on_body(image_id, inline_product(asset_url, "_anon_" + "a" * 32))
    assert_error(api.post("/try-on", json=reserved), 409, "RESERVED_EXTERNAL_ID")
    unknown = try_on_body("ephemeral/customer/ttl-7d/x/20260101-y.jpeg", inline_product(asset_url))
    assert_error(api.post("/try-on", json=unknown), 404, "IMAGE_NOT_FOUND")
    remote = {
        "products": [inline_product(asset_url)],
        "person": {"image": {"source": {"url": "https://example.com/me.jpg"}}},
    }
    assert_error(api.post("/try-on", json=remote), 400, "CUSTOMER_IMAGE_FETCH_FAILED")
    two = {"products": [inline_product(asset_url), inline_product(asset_url)],
           "person": {"image": {"source": {"id": image_id}}}}  # fmt: skip
    body = assert_error(api.post("/try-on", json=two), 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "products"
    both = {"products": [inline_product(asset_url)],
            "person": {"image": {"source": {"id": image_id, "url": asset_url}}}}  # fmt: skip
    body = assert_error(api.post("/try-on", json=both), 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "person.image.source"
    typed = try_on_body(image_id, {"externalId": 5}, output={"keepForDays": 2, "watermark": "no"})
    body = assert_error(api.post("/try-on", json=typed), 400, "VALIDATION_FAILED")
    assert body["details"] == [
        {"path": "products.0.externalId", "message": "Expected string, received number"},
        {"path": "output.watermark", "message": "Expected boolean, received string"},
        {
            "path": "output.keepForDays",
            "message": "Invalid enum value. Expected 1 | 3 | 7, received 2",
        },
    ]
    assert_error(api.get("/generations/cmdoesnotexist"), 404, "GENERATION_NOT_FOUND")
    # None of the rejected calls created anything or cost anything.
    assert emulator.counters()["generationsCreated"] == 0
    assert api.get("/account/credits").json() == {"creditBalance": 1000}


def test_person_by_url_and_multipart(api: httpx.Client, emulator: Emulator) -> None:
    person_url = f"{emulator.root}/_emulator/assets/person.jpeg"
    body = {
        "products": [{"title": "Cap", "images": [{"source": {"fileKey": "cap"}}]}],
        "person": {"image": {"source": {"url": person_url}}},
    }
    r = api.post("/try-on", data={"data": json.dumps(body)}, files={"cap": ("c.png", png())})
    assert r.status_code == 200, r.text
    assert wait_terminal(api, r.json()["generationId"])["status"] == "COMPLETED"

    body = {
        "products": [{"externalId": "mp", "title": "Cap", "images": [{"fileKey": "cap"}]}],
        "person": {"image": {"source": {"fileKey": "me"}}},
    }
    files = {"cap": ("c.png", png()), "me": ("me.jpg", jpeg())}
    r = api.post("/try-on/sync", data={"data": json.dumps(body)}, files=files)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"
    r = api.post("/try-on", data={"data": json.dumps(body)}, files={"cap": ("c.png", png())})
    assert_error(r, 400, "MULTIPART_FILE_NOT_FOUND")
    files = {"cap": ("c.png", png()), "me": ("me.jpg", b"garbage bytes here")}
    r = api.post("/try-on", data={"data": json.dumps(body)}, files=files)
    assert_error(r, 400, "INVALID_IMAGE")


def test_sync_200_completed_and_failed(api: httpx.Client, asset_url: str) -> None:
    image_id = upload(api)["imageId"]
    r = api.post("/try-on/sync", json=try_on_body(image_id, inline_product(asset_url)))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "COMPLETED"
    assert body["productExternalId"] == "shirt-42"
    assert {"generationId", "createdAt", "updatedAt", "resultImageUrl"} <= set(body)

    bad = inline_product("http://192.0.2.1/tee.png", "remote")
    r = api.post("/try-on/sync", json=try_on_body(image_id, bad))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "FAILED"
    assert body["errorCode"] == "PRODUCT_IMAGE_FETCH_FAILED"
    assert body["errorMessage"]
    assert "resultImageUrl" not in body


def test_sync_202_when_still_running(api: httpx.Client, emulator: Emulator, asset_url: str) -> None:
    emulator.reset(durationMedian=100_000)
    image_id = upload(api)["imageId"]
    started = time.monotonic()
    r = api.post("/try-on/sync", json=try_on_body(image_id, inline_product(asset_url)))
    assert r.status_code == 202
    assert r.json()["status"] in ("PENDING", "PROCESSING")
    assert time.monotonic() - started < 5  # 90 emulator seconds at speed 100
    # Advancing the clock hurries the generation along.
    emulator.control("POST", "clock/advance", {"seconds": 700_000})
    assert wait_terminal(api, r.json()["generationId"])["status"] == "COMPLETED"


def test_failed_generation_refunds_its_credit(
    api: httpx.Client, emulator: Emulator, emulator_process: Emulator
) -> None:
    image_id = upload(api)["imageId"]
    for url in (
        "http://192.0.2.1/tee.png",  # not loopback
        f"{emulator.root}/_emulator/assets/nope.png",  # 404
        f"{emulator.root}/_emulator/counters",  # not an image
        "http://127.0.0.1:1/refused.png",  # connection refused
    ):
        r = api.post("/try-on", json=try_on_body(image_id, inline_product(url, None)))
        assert r.status_code == 200, r.text
        done = wait_terminal(api, r.json()["generationId"])
        assert done["status"] == "FAILED", url
        assert done["errorCode"] == "PRODUCT_IMAGE_FETCH_FAILED"
    assert api.get("/account/credits").json() == {"creditBalance": 1000}
    counters = emulator.counters()
    assert counters["creditsSpent"] == 4
    assert counters["creditsRefunded"] == 4


def test_insufficient_credits_and_free_mock(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    emulator.reset(credits=0)
    image_id = upload(api)["imageId"]
    r = api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)))
    assert_error(r, 402, "INSUFFICIENT_CREDITS")
    assert api.get("/products").json()["count"] == 0  # nothing half-created
    mock = {"externalId": "m", "title": "mock", "images": [{"source": {"url": asset_url}}]}
    r = api.post("/try-on/sync", json=try_on_body(image_id, mock))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "COMPLETED"
    preview = httpx.get(upload(api)["imageUrl"]).content
    assert httpx.get(body["resultImageUrl"]).content == preview  # the person, unchanged
    assert api.get("/account/credits").json() == {"creditBalance": 0}


def test_watermark_needs_logo(api: httpx.Client, emulator: Emulator, asset_url: str) -> None:
    emulator.reset(hasLogo=True)
    image_id = upload(api, jpeg(400, 500, (240, 240, 240)))["imageId"]

    def corner(watermark: bool) -> tuple[int, ...]:
        body = try_on_body(image_id, inline_product(asset_url), output={"watermark": watermark})
        result = api.post("/try-on/sync", json=body).json()["resultImageUrl"]
        img = Image.open(io.BytesIO(httpx.get(result).content)).convert("RGB")
        pixel: tuple[int, ...] = img.getpixel((20, img.height - 20))  # type: ignore[assignment]
        return pixel

    assert max(corner(True)) < 80
    assert min(corner(False)) > 200


def test_erase_customer(api: httpx.Client, asset_url: str) -> None:
    uploaded = upload(api, externalUserId="user-9")
    body = try_on_body(uploaded["imageId"], inline_product(asset_url), externalUserId="user-9")
    done = api.post("/try-on/sync", json=body).json()
    assert httpx.get(done["resultImageUrl"]).status_code == 200
    r = api.delete("/customers/user-9")
    assert r.status_code == 204
    assert r.content == b""
    assert httpx.get(done["resultImageUrl"]).status_code == 404
    assert httpx.get(uploaded["imageUrl"]).status_code == 404
    after = api.get(f"/generations/{done['generationId']}").json()
    assert after["status"] == "COMPLETED"
    assert "resultImageUrl" not in after
    assert_error(api.post("/try-on", json=body), 404, "IMAGE_NOT_FOUND")
    assert api.delete("/customers/user-9").status_code == 204  # idempotent
    assert api.delete("/customers/a%2Fnobody").status_code == 204


def test_result_expires_after_keep_for_days(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    emulator.reset(resultUrlLifetime=10 * DAY)  # the URL outlives the file: its expiry shows
    image_id = upload(api)["imageId"]
    body = try_on_body(image_id, inline_product(asset_url), output={"keepForDays": 1})
    url = api.post("/try-on/sync", json=body).json()["resultImageUrl"]
    assert httpx.get(url).status_code == 200
    emulator.control("POST", "clock/advance", {"seconds": DAY + 1})
    assert httpx.get(url).status_code == 404


def test_cross_account_access_is_forbidden(
    api: httpx.Client, emulator: Emulator, asset_url: str
) -> None:
    emulator.control("PUT", "accounts/gk_other", {})
    image_id = upload(api)["imageId"]
    gen_id = api.post("/try-on", json=try_on_body(image_id, inline_product(asset_url))).json()[
        "generationId"
    ]
    other = httpx.Client(base_url=emulator.base_url, headers={"x-api-key": "gk_other"})
    assert_error(other.get(f"/generations/{gen_id}"), 403, "FORBIDDEN")
    r = other.post("/try-on", json=try_on_body(image_id, inline_product(asset_url)))
    assert_error(r, 403, "FORBIDDEN")
    r = other.post(
        "/try-on", json=try_on_body(upload(other)["imageId"], {"externalId": "shirt-42"})
    )
    assert_error(r, 403, "FORBIDDEN")
    other.close()
