"""The request path alone (no worker running): validation, errors, cancel, catalog, images.

Every bad request gets a 4xx with a stable code and leaves Redis exactly as it was."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import Emulator
from tests.e2e.conftest import Gateway, photo_bytes, put_product, stack_fixture, upload_photo

gateway = stack_fixture(workers=0)


async def snapshot(redis: Redis) -> dict[bytes, Any]:
    return {k: await redis.type(k) for k in await redis.keys("*")}


def tryon_body(image_id: str, **product: Any) -> dict[str, Any]:
    return {
        "products": [product or {"externalId": "tee"}],
        "person": {"image": {"source": {"id": image_id}}},
    }


BAD_TRYONS: list[tuple[str, Any, int, str]] = [
    ("not json", b"{nope", 400, "MALFORMED_JSON"),
    ("empty", b"", 400, "VALIDATION_FAILED"),
    ("array", [], 400, "VALIDATION_FAILED"),
    ("wrong type", {"products": "tee", "person": {}}, 400, "VALIDATION_FAILED"),
    ("unknown field", {"products": [], "person": {}, "bogus": 1}, 400, "VALIDATION_FAILED"),
    ("no person", {"products": [{"externalId": "tee"}]}, 400, "VALIDATION_FAILED"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "code"), BAD_TRYONS, ids=[c[0] for c in BAD_TRYONS]
)
async def test_malformed_tryons_are_refused_and_change_nothing(
    api: httpx.AsyncClient, redis: Redis, case: str, body: Any, status: int, code: str
) -> None:
    before = await snapshot(redis)
    if isinstance(body, bytes):
        r = await api.post(
            "/v1/try-ons", content=body, headers={"content-type": "application/json"}
        )
    else:
        r = await api.post("/v1/try-ons", json=body)
    assert r.status_code == status, r.text
    envelope = r.json()
    assert envelope["code"] == code
    assert envelope["status"] == status
    assert envelope["message"]
    assert await snapshot(redis) == before


async def test_a_chunked_tryon_body_is_read_whole_and_capped(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """The try-on body arrives in pieces (Transfer-Encoding: chunked, no Content-Length): read
    whole, and cut with a 413 once past the 11 MB cap, with nothing written."""
    image_id = await upload_photo(api)
    raw = json.dumps(tryon_body(image_id, title="Tee", images=[
        {"source": {"url": "https://example.com/t.png"}}])).encode()  # fmt: skip

    async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    headers = {"content-type": "application/json"}
    r = await api.post("/v1/try-ons", content=pieces(raw[:7], raw[7:60], raw[60:]),
                       headers=headers)  # fmt: skip
    assert (r.status_code, r.json()["status"]) == (202, "queued"), r.text
    before = await snapshot(redis)
    padding = b" " * (1024 * 1024)
    r = await api.post("/v1/try-ons", content=pieces(raw[:-1], *[padding] * 11, b"}"),
                       headers=headers)  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert await snapshot(redis) == before


async def test_semantic_errors_have_stable_codes(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis, gateway: Gateway
) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    before = await snapshot(redis)
    queued = await redis.zcard(gateway.queue)
    url = f"{emulator.root}/_emulator/assets/red-tee.png"
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (
            {**tryon_body(image_id), "products": [{"externalId": "tee"}, {"externalId": "tee"}]},
            400, "VALIDATION_FAILED", "products",
        ),
        ({**tryon_body(image_id), "products": []}, 400, "VALIDATION_FAILED", "products"),
        (
            {**tryon_body(image_id), "person": {"image": {"source": {"id": image_id, "url": url}}}},
            400, "VALIDATION_FAILED", "person.image.source",
        ),
        (
            {**tryon_body(image_id), "person": {"image": {"source": {}}}},
            400, "VALIDATION_FAILED", "person.image.source",
        ),
        (tryon_body("img_unknown"), 404, "IMAGE_NOT_FOUND", None),
        (tryon_body(image_id, externalId="nope"), 404, "PRODUCT_NOT_FOUND", None),
        (tryon_body(image_id, externalId="_anon_x", images=[{"source": {"url": url}}]),
         409, "RESERVED_EXTERNAL_ID", None),
        (tryon_body(image_id, title="t"), 400, "PRODUCT_IMAGES_REQUIRED", None),
        (tryon_body(image_id, externalId="p", images=[{"source": {"url": "ftp://x/y.png"}}]),
         400, "VALIDATION_FAILED", "products.0.images.0.source.url"),
        (tryon_body(image_id, externalId="p", images=[{"source": {"fileKey": "f"}}]),
         400, "VALIDATION_FAILED", "products.0.images.0.source"),
        ({**tryon_body(image_id), "output": {"keepForDays": 5}}, 400, "VALIDATION_FAILED",
         "output.keepForDays"),
        ({**tryon_body(image_id), "metadata": {"big": "x" * 5000}}, 400, "VALIDATION_FAILED",
         "metadata"),
        ({**tryon_body(image_id), "metadata": {"nested": {"a": 1}}}, 400, "VALIDATION_FAILED",
         "metadata"),
    ]  # fmt: skip
    for body, status, code, path in cases:
        r = await api.post("/v1/try-ons", json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        if path is not None:
            assert r.json()["details"][0]["path"] == path, r.text
    assert await redis.zcard(gateway.queue) == queued
    assert await snapshot(redis) == before


async def test_auth_errors(gateway: Gateway, emulator: Emulator, redis: Redis) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as anon:
        r = await anon.get("/v1/products")
        assert (r.status_code, r.json()["code"]) == (401, "MISSING_API_KEY")
        r = await anon.get("/v1/products", headers={"Authorization": "Bearer sk_wrong"})
        assert (r.status_code, r.json()["code"]) == (401, "INVALID_API_KEY")
        r = await anon.get("/v1/products", headers={"Authorization": "Basic abc"})
        assert (r.status_code, r.json()["code"]) == (401, "INVALID_API_KEY")
        r = await anon.get("/v1/nothing-here")
        assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")


async def test_photo_uploads_are_checked(api: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"files": {"other": ("a", b"x", "text/plain")}}, 400, "FILE_REQUIRED"),
        ({"files": {"file": ("a.jpg", b"not an image", "image/jpeg")}}, 400, "INVALID_IMAGE"),
        ({"files": {"file": ("a.jpg", b"<?php 1; ?>" * 10, "image/jpeg")}}, 400, "INVALID_IMAGE"),
        ({"files": {"file": ("a.jpg", photo_bytes(), "image/jpeg")}, "data": {"crop": "maybe"}},
         400, "VALIDATION_FAILED"),
        ({"files": {"file": ("a.jpg", photo_bytes(), "image/jpeg")}, "data": {"keepForDays": "5"}},
         400, "VALIDATION_FAILED"),
        ({"json": {"file": "x"}}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]  # fmt: skip
    for kwargs, status, code in cases:
        r = await api.post("/v1/images", **kwargs)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    big = b"\xff\xd8\xff\xe0" + b"\0" * (10 * 1024 * 1024 + 10)
    r = await api.post("/v1/images", files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    r = await api.post(
        "/v1/images",
        content=b'--xx\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=xx"},
    )
    assert 400 <= r.status_code < 500
    assert await snapshot(redis) == before


async def test_photo_formats_are_recognised_by_their_bytes(api: httpx.AsyncClient) -> None:
    import io

    from PIL import Image

    for fmt, mime in [("PNG", "image/png"), ("WEBP", "image/webp"), ("JPEG", "image/jpeg")]:
        buf = io.BytesIO()
        Image.new("RGB", (40, 50), (1, 2, 3)).save(buf, fmt)
        # the declared type is ignored; the bytes decide
        r = await api.post("/v1/images", files={"file": ("x.bin", buf.getvalue(), "text/plain")})
        assert r.status_code == 201, r.text
        assert r.json()["contentType"] == mime


async def test_cancel_a_queued_tryon(api: httpx.AsyncClient, emulator: Emulator) -> None:
    image_id = await upload_photo(api)
    await put_product(api, emulator)
    r = await api.post("/v1/try-ons", json=tryon_body(image_id))
    tryon_id = r.json()["id"]
    r = await api.delete(f"/v1/try-ons/{tryon_id}")
    assert r.status_code == 200
    assert r.json()["status"] == "canceled"
    r = await api.get(f"/v1/try-ons/{tryon_id}", params={"wait": 5})
    assert r.json()["status"] == "canceled"
    # DELETE is idempotent: canceling again reports the same canceled try-on
    r = await api.delete(f"/v1/try-ons/{tryon_id}")
    assert (r.status_code, r.json()["status"]) == (200, "canceled")
    assert (await api.delete("/v1/try-ons/to_nope")).status_code == 404


async def test_catalog_crud_and_pagination(api: httpx.AsyncClient, emulator: Emulator) -> None:
    url = f"{emulator.root}/_emulator/assets/red-tee.png"
    r = await api.put(
        "/v1/products/p0",
        json={"title": "T", "images": [{"source": {"url": url}}], "metadata": {"sku": "1"}},
    )
    assert r.status_code == 201
    r = await api.put("/v1/products/p0", json={"title": "T2", "images": [{"source": {"url": url}}]})
    assert r.status_code == 200
    assert r.json()["title"] == "T2"
    for i in range(1, 7):
        await api.put(f"/v1/products/p{i}", json={"images": [{"source": {"url": url}}]})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/products", params=params)).json()
        seen += [p["externalId"] for p in page["items"]]
        assert page["count"] == len(page["items"])
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    assert seen == [f"p{i}" for i in range(7)]
    assert (await api.get("/v1/products/p3")).json()["images"][0]["sourceUrl"] == url
    assert (await api.delete("/v1/products/p3")).status_code == 204
    r = await api.get("/v1/products/p3")
    assert (r.status_code, r.json()["code"]) == (404, "PRODUCT_NOT_FOUND")
    r = await api.put("/v1/products/p9", json={"images": []})
    assert (r.status_code, r.json()["code"]) == (400, "PRODUCT_IMAGES_REQUIRED")
    r = await api.get("/v1/products", params={"limit": 500})
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_FAILED")


async def test_credits_and_openapi(api: httpx.AsyncClient, emulator: Emulator) -> None:
    emulator.reset(credits=321)
    r = await api.get("/v1/account/credits")
    assert r.status_code == 200
    assert r.json()["creditBalance"] == 321
    schema = (await api.get("/docs/openapi.json")).json()
    assert "/v1/try-ons" in schema["paths"]
    assert (await api.get("/docs/swagger")).status_code == 200


async def test_multipart_tryon_with_the_photo_inline(
    api: httpx.AsyncClient, emulator: Emulator, redis: Redis
) -> None:
    import json

    await put_product(api, emulator)
    data = json.dumps(
        {"products": [{"externalId": "tee"}], "person": {"image": {"source": {"fileKey": "me"}}}}
    )
    r = await api.post(
        "/v1/try-ons", data={"data": data}, files={"me": ("me.jpg", photo_bytes(), "image/jpeg")}
    )
    assert r.status_code == 202, r.text
    before = await snapshot(redis)
    r = await api.post(
        "/v1/try-ons", data={"data": data}, files={"you": ("me.jpg", photo_bytes(), "image/jpeg")}
    )
    assert (r.status_code, r.json()["code"]) == (400, "MULTIPART_FILE_NOT_FOUND")
    r = await api.post(
        "/v1/try-ons", data={"data": data}, files={"me": ("me.jpg", b"garbage bytes", "image/jpeg")}
    )
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_IMAGE")
    assert await snapshot(redis) == before


async def test_answers_do_not_name_the_server(api: httpx.AsyncClient) -> None:
    # `tryon-gateway serve` turns uvicorn's `server: uvicorn` off: nothing a client needs.
    for path in ("/healthz", "/v1/try-ons/to_missing", "/docs"):
        r = await api.get(path)
        assert "server" not in r.headers, path
        assert "date" in r.headers
