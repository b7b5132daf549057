"""The product catalog: upsert semantics, listing, expiry, ids with slashes, cross-account."""

from __future__ import annotations

import json

import httpx

from tests.conftest import Emulator, assert_error
from tests.emulator.conftest import png

DAY = 86400


def test_upsert_create_then_partial_update(api: httpx.Client, asset_url: str) -> None:
    r = api.post(
        "/products",
        json={
            "externalId": "shirt-42",
            "title": "Red tee",
            "description": "Soft cotton",
            "images": [{"source": {"url": asset_url}, "classifications": {"view": "front"}}],
            "metadata": {"sku": 42},
        },
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["externalId"] == "shirt-42"
    assert created["validForDays"] is None
    assert created["expiresAt"] is None
    assert created["lastUsedAt"] is None
    assert created["metadata"] == {"sku": 42}
    assert created["autoDetectImageRoles"] is False
    assert created["images"][0]["sourceUrl"] == asset_url
    assert created["images"][0]["order"] == 0
    assert created["images"][0]["classifications"] == {"view": "front"}

    r = api.post("/products", json={"externalId": "shirt-42", "title": "Crimson tee"})
    updated = r.json()
    assert updated["title"] == "Crimson tee"
    assert updated["description"] == "Soft cotton"  # kept when left out
    assert updated["images"] == created["images"]
    assert updated["createdAt"] == created["createdAt"]

    other = f"{asset_url}?v=2"
    r = api.post("/products", json={"externalId": "shirt-42", "images": [{"url": other}]})
    assert [i["sourceUrl"] for i in r.json()["images"]] == [other]  # replaced, flat form


def test_image_urls_alias_and_valid_for_days(api: httpx.Client, emulator: Emulator) -> None:
    r = api.post(
        "/products",
        json={"externalId": "p1", "imageUrls": ["http://127.0.0.1/a.png"], "validForDays": 2},
    )
    body = r.json()
    assert body["images"][0]["sourceUrl"] == "http://127.0.0.1/a.png"
    assert body["validForDays"] == 2
    assert body["expiresAt"] is not None
    r = api.post("/products", json={"externalId": "p1", "validForDays": None})
    assert r.json()["expiresAt"] is None
    emulator.control("POST", "clock/advance", {"seconds": 10 * DAY})
    assert api.get("/products/p1").status_code == 200


def test_product_expires_through_clock(api: httpx.Client, emulator: Emulator) -> None:
    api.post(
        "/products",
        json={"externalId": "short", "imageUrls": ["http://127.0.0.1/a.png"], "validForDays": 1},
    )
    emulator.control("POST", "clock/advance", {"seconds": DAY - 60})
    assert api.get("/products/short").status_code == 200
    emulator.control("POST", "clock/advance", {"seconds": 120})
    assert_error(api.get("/products/short"), 404, "PRODUCT_NOT_FOUND")
    assert api.get("/products").json()["count"] == 0


def test_multipart_upsert(api: httpx.Client) -> None:
    data = {"externalId": "mp", "title": "Cap", "images": [{"source": {"fileKey": "front"}}]}
    r = api.post(
        "/products",
        data={"data": json.dumps(data)},
        files={"front": ("front.png", png(), "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["sourceUrl"].startswith("upload://")
    # Flat fileKey form, and a missing part.
    data = {"externalId": "mp", "images": [{"fileKey": "back", "classifications": {}}]}
    r = api.post("/products", data={"data": json.dumps(data)}, files={"x": ("x.png", png())})
    assert_error(r, 400, "MULTIPART_FILE_NOT_FOUND")
    r = api.post(
        "/products",
        data={"data": json.dumps(data)},
        files={"back": ("b.png", b"not an image at all", "image/png")},
    )
    assert_error(r, 400, "INVALID_IMAGE")


def test_upsert_errors(api: httpx.Client) -> None:
    assert_error(api.post("/products", json={"title": "x"}), 400, "EXTERNAL_ID_REQUIRED")
    assert_error(api.post("/products", json={"externalId": "new"}), 400, "PRODUCT_IMAGES_REQUIRED")
    r = api.post("/products", json={"externalId": "new", "images": []})
    assert_error(r, 400, "PRODUCT_IMAGES_REQUIRED")
    r = api.post("/products", json={"externalId": "new", "images": [{"classifications": {}}]})
    assert_error(r, 400, "INVALID_IMAGE_INPUT")
    r = api.post("/products", json={"externalId": "_anon_" + "0" * 32, "imageUrls": ["http://x/"]})
    assert_error(r, 409, "RESERVED_EXTERNAL_ID")
    r = api.post(
        "/products",
        json={"externalId": "v", "images": [{"source": {}}], "validForDays": "7"},
    )
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert {"path": "validForDays", "message": "Expected number, received string"} in body[
        "details"
    ]
    r = api.post(
        "/products",
        json={"externalId": "v", "images": [{"source": {"url": 5}}], "validForDays": 400},
    )
    body = assert_error(r, 400, "VALIDATION_FAILED")
    assert body["details"] == [
        {"path": "images.0.source.url", "message": "Expected string, received number"},
        {"path": "validForDays", "message": "Number must be less than or equal to 365"},
    ]


def test_list_pagination_newest_first(api: httpx.Client) -> None:
    for i in range(5):
        api.post("/products", json={"externalId": f"p{i}", "imageUrls": ["http://127.0.0.1/a"]})
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/products", params=params).json()
        pages += 1
        assert page["count"] == len(page["items"])
        seen += [item["externalId"] for item in page["items"]]
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        cursor = page["nextCursor"]
    assert pages == 3
    assert seen == ["p4", "p3", "p2", "p1", "p0"]
    default = api.get("/products").json()
    assert default["count"] == 5
    assert default["hasMore"] is False


def test_list_validation(api: httpx.Client) -> None:
    for bad in ("0", "201", "abc", "1.5"):
        body = assert_error(api.get("/products", params={"limit": bad}), 400, "VALIDATION_FAILED")
        assert body["details"][0]["path"] == "limit"
    body = assert_error(api.get("/products", params={"cursor": "!!"}), 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "cursor"


def test_get_delete_and_encoded_slash(api: httpx.Client) -> None:
    api.post("/products", json={"externalId": "a/b", "imageUrls": ["http://127.0.0.1/a"]})
    r = api.get("/products/a%2Fb")
    assert r.status_code == 200
    assert r.json()["externalId"] == "a/b"
    r = api.delete("/products/a%2Fb")
    assert r.status_code == 204
    assert r.content == b""
    assert_error(api.get("/products/a%2Fb"), 404, "PRODUCT_NOT_FOUND")
    assert_error(api.delete("/products/a%2Fb"), 404, "PRODUCT_NOT_FOUND")


def test_other_accounts_product_is_forbidden(api: httpx.Client, emulator: Emulator) -> None:
    emulator.control("PUT", "accounts/gk_other", {"credits": 5})
    other = {"x-api-key": "gk_other"}
    r = httpx.post(
        f"{emulator.base_url}/products",
        headers=other,
        json={"externalId": "theirs", "imageUrls": ["http://127.0.0.1/a"]},
    )
    assert r.status_code == 200
    assert_error(api.get("/products/theirs"), 403, "FORBIDDEN")
    assert_error(api.delete("/products/theirs"), 403, "FORBIDDEN")
    assert api.get("/products").json()["count"] == 0
    r = httpx.get(f"{emulator.base_url}/account/credits", headers=other)
    assert r.json() == {"creditBalance": 5}
