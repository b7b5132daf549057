"""Genlook's v1 API, one suite run against the emulator (Genlook as genlook-api.md describes
it) and against the gateway's `/tryon/v1`: raw HTTP with `x-api-key`, as an integration calls
Genlook. Each test asserts the same answer on both; where the gateway answers otherwise on
purpose, the test names the difference, and docs/genlook-compat.md lists it (`DELIBERATE`).

The gateway runs as subprocesses (a gateway and a worker) in front of the session's emulator,
so a try-on through it takes the whole path: intake, queue, worker, upstream, result copy.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis as sync_redis
from PIL import Image

from tests.conftest import TEST_REDIS_URL, Emulator, assert_error
from tests.e2e.conftest import OTHER_SECRET, SECRET, Gateway, stack_fixture

# What the gateway answers otherwise on purpose (docs/genlook-compat.md, "What differs").
DELIBERATE = {
    # Another account's generation or product: Genlook says 403 FORBIDDEN; the gateway never
    # tells an app that another app's id exists.
    "cross_account": {"emulator": (403, "FORBIDDEN"), "gateway": (404, "GENERATION_NOT_FOUND")},
}
OTHER_GENLOOK_KEY = "gk_other_account_000000000000000000000000000000"
CREDITS = 100_000


@dataclass
class Target:
    name: str
    base_url: str
    key: str
    other_key: str
    emulator: Emulator

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"x-api-key": key or self.key}, timeout=30.0
        )

    def asset(self, name: str = "red-tee") -> str:
        return f"{self.emulator.root}/_emulator/assets/{name}.png"

    async def asset_bytes(self, name: str = "red-tee") -> bytes:
        async with httpx.AsyncClient(timeout=30) as plain:
            return (await plain.get(self.asset(name))).content

    def out_of_credits(self) -> None:
        """Genlook's balance at 0; the gateway refuses from the balance it last read, which
        its workers refresh every minute (here: read it now)."""
        self.emulator.control("PUT", f"accounts/{self.emulator.api_key}", {"credits": 0})
        if self.name == "gateway":
            store = sync_redis.Redis.from_url(TEST_REDIS_URL)
            store.set("tryon:credits-balance", 0)
            store.close()

    def refill(self) -> None:
        self.emulator.control("PUT", f"accounts/{self.emulator.api_key}", {"credits": CREDITS})
        if self.name == "gateway":
            store = sync_redis.Redis.from_url(TEST_REDIS_URL)
            store.set("tryon:credits-balance", CREDITS)
            store.close()


gateway_stack = stack_fixture()


@pytest.fixture(params=["emulator", "gateway"])
def target(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[Target]:
    """`emulator` starts each test on a clean emulator (no faults left by another test); the
    gateway finds the photos and products it uploaded gone, and uploads them again."""
    emulator_process = emulator
    emulator_process.control("PUT", f"accounts/{emulator_process.api_key}", {"credits": CREDITS})
    emulator_process.control("PUT", f"accounts/{OTHER_GENLOOK_KEY}", {"credits": 5})
    if request.param == "emulator":
        made = Target(
            "emulator",
            emulator_process.base_url,
            emulator_process.api_key,
            OTHER_GENLOOK_KEY,
            emulator_process,
        )
    else:
        gw: Gateway = request.getfixturevalue("gateway_stack")
        made = Target("gateway", f"{gw.url}/tryon/v1", SECRET, OTHER_SECRET, emulator_process)
    yield made
    made.refill()


@pytest.fixture
async def api(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    async with target.client() as client:
        yield client


def person_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 500), (200, 160, 130)).save(out, "JPEG")
    return out.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body = assert_error(r, status, code)
    assert body["status"] == status
    return body


async def upload(api: httpx.AsyncClient, **fields: str) -> dict[str, Any]:
    r = await api.post(
        "/images/upload", files={"file": ("me.jpg", person_jpeg(), "image/jpeg")}, data=fields
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def person(image_id: str) -> dict[str, Any]:
    return {"image": {"source": {"id": image_id}}}


async def poll(api: httpx.AsyncClient, generation_id: str, within: float = 60) -> dict[str, Any]:
    """As Genlook's docs poll (every 2 s; faster here, the emulator's clock runs faster)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await api.get(f"/generations/{generation_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
        assert body["status"] in ("PENDING", "PROCESSING"), body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


PRODUCT_FIELDS = {
    "externalId",
    "title",
    "description",
    "metadata",
    "autoDetectImageRoles",
    "validForDays",
    "expiresAt",
    "lastUsedAt",
    "createdAt",
    "updatedAt",
    "images",
}


# --- auth and account ----------------------------------------------------------------------


async def test_credits(api: httpx.AsyncClient) -> None:
    r = await api.get("/account/credits")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"creditBalance"}
    assert isinstance(r.json()["creditBalance"], int)


async def test_missing_and_invalid_key(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.base_url, timeout=30) as bare:
        error(await bare.get("/account/credits"), 401, "MISSING_API_KEY")
        bad = {"x-api-key": "gk_wrong_key_000000000000000000000000000000000"}
        error(await bare.get("/account/credits", headers=bad), 401, "INVALID_API_KEY")
        # A Bearer header is not how Genlook's key is sent.
        bearer = {"Authorization": f"Bearer {target.key}"}
        error(await bare.get("/account/credits", headers=bearer), 401, "MISSING_API_KEY")


async def test_delete_customer_is_idempotent_204(api: httpx.AsyncClient) -> None:
    for _ in range(2):
        r = await api.delete(f"/customers/{unique('nobody')}")
        assert r.status_code == 204
        assert r.content == b""


# --- uploads -------------------------------------------------------------------------------


async def test_upload_and_keyless_preview(api: httpx.AsyncClient) -> None:
    body = await upload(api, crop="false", externalUserId="u1", keepForDays="3")
    assert set(body) == {"imageId", "imageUrl"}
    async with httpx.AsyncClient(timeout=30) as plain:  # no key: the link is the credential
        preview = await plain.get(body["imageUrl"])
        assert preview.status_code == 200
        assert preview.headers["content-type"].startswith("image/")
        Image.open(io.BytesIO(preview.content)).verify()
        # The link cannot be guessed: change one character of its signature.
        url = body["imageUrl"]
        forged = url[:-1] + ("A" if url[-1] != "A" else "B")
        assert (await plain.get(forged)).status_code in (403, 404)


async def test_upload_deprecated_field_names(api: httpx.AsyncClient) -> None:
    body = await upload(api, customerId="legacy-user", retentionDays="1")
    assert body["imageId"]


async def test_upload_errors(api: httpx.AsyncClient) -> None:
    r = await api.post("/images/upload", data={"crop": "true"}, files={"x": ("a", b"b")})
    error(r, 400, "FILE_REQUIRED")
    r = await api.post("/images/upload", files={"file": ("a.jpg", b"not an image", "image/jpeg")})
    error(r, 400, "INVALID_IMAGE")
    r = await api.post(
        "/images/upload",
        files={"file": ("me.jpg", person_jpeg(), "image/jpeg")},
        data={"keepForDays": "5"},
    )
    body = error(r, 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "keepForDays"


# --- products ------------------------------------------------------------------------------


async def test_product_upsert_get_partial_update_delete(
    api: httpx.AsyncClient, target: Target
) -> None:
    pid = unique("shirt")
    r = await api.post(
        "/products",
        json={
            "externalId": pid,
            "title": "Red tee",
            "description": "Soft cotton",
            "metadata": {"sku": 42},
            "images": [{"source": {"url": target.asset()}, "classifications": {"view": "front"}}],
        },
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert set(created) == PRODUCT_FIELDS
    assert created["externalId"] == pid
    assert created["metadata"] == {"sku": 42}
    assert created["validForDays"] is None
    assert created["expiresAt"] is None
    assert created["lastUsedAt"] is None
    assert created["autoDetectImageRoles"] is False
    assert created["createdAt"].endswith("Z")
    assert created["images"][0]["sourceUrl"] == target.asset()
    assert created["images"][0]["order"] == 0
    assert created["images"][0]["classifications"] == {"view": "front"}
    # Partial: only the title changes; images, metadata and description stay.
    r = await api.post("/products", json={"externalId": pid, "title": "Blue tee"})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["title"] == "Blue tee"
    assert updated["description"] == "Soft cotton"
    assert updated["images"] == created["images"]
    assert updated["createdAt"] == created["createdAt"]
    r = await api.post("/products", json={"externalId": pid, "validForDays": 30})
    assert r.json()["validForDays"] == 30
    assert r.json()["expiresAt"] is not None
    got = await api.get(f"/products/{pid}")
    assert got.status_code == 200
    assert got.json()["title"] == "Blue tee"
    r = await api.delete(f"/products/{pid}")
    assert r.status_code == 204
    error(await api.get(f"/products/{pid}"), 404, "PRODUCT_NOT_FOUND")
    error(await api.delete(f"/products/{pid}"), 404, "PRODUCT_NOT_FOUND")


async def test_product_upsert_errors(api: httpx.AsyncClient, target: Target) -> None:
    url = target.asset()
    error(await api.post("/products", json={"title": "x"}), 400, "EXTERNAL_ID_REQUIRED")
    r = await api.post("/products", json={"externalId": unique("new"), "title": "x"})
    error(r, 400, "PRODUCT_IMAGES_REQUIRED")
    r = await api.post("/products", json={"externalId": "_anon_x", "images": [{"url": url}]})
    error(r, 409, "RESERVED_EXTERNAL_ID")
    r = await api.post(
        "/products", json={"externalId": unique("p"), "images": [{}], "validForDays": 3}
    )
    error(r, 400, "INVALID_IMAGE_INPUT")
    r = await api.post(
        "/products",
        json={"externalId": unique("p"), "images": [{"url": url}], "validForDays": "7"},
    )
    body = error(r, 400, "VALIDATION_FAILED")
    assert body["details"] == [
        {"path": "validForDays", "message": "Expected number, received string"}
    ]


async def test_product_list_pages(api: httpx.AsyncClient, target: Target) -> None:
    for _ in range(3):
        r = await api.post(
            "/products",
            json={"externalId": unique("list"), "images": [{"source": {"url": target.asset()}}]},
        )
        assert r.status_code == 200
    r = await api.get("/products", params={"limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"items", "nextCursor", "hasMore", "count"}
    assert page["count"] == len(page["items"]) == 2
    assert page["hasMore"] is True
    assert set(page["items"][0]) == PRODUCT_FIELDS
    seen = {p["externalId"] for p in page["items"]}
    while page["hasMore"]:
        r = await api.get("/products", params={"limit": 2, "cursor": page["nextCursor"]})
        page = r.json()
        fresh = {p["externalId"] for p in page["items"]}
        assert not fresh & seen
        seen |= fresh
    assert page["nextCursor"] is None
    body = error(await api.get("/products", params={"limit": 0}), 400, "VALIDATION_FAILED")
    assert body["details"][0]["path"] == "limit"


async def test_multipart_product_with_image_bytes(api: httpx.AsyncClient, target: Target) -> None:
    tee = await target.asset_bytes()
    pid = unique("bytes")
    data = {"externalId": pid, "title": "Tee", "images": [{"source": {"fileKey": "front"}}]}
    r = await api.post(
        "/products",
        data={"data": json.dumps(data)},
        files={"front": ("front.png", tee, "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["sourceUrl"].startswith("upload://")
    # The stored image is what Genlook renders from: a reference to it completes.
    image_id = (await upload(api))["imageId"]
    r = await api.post(
        "/try-on", json={"products": [{"externalId": pid}], "person": person(image_id)}
    )
    assert r.status_code == 200, r.text
    assert (await poll(api, r.json()["generationId"]))["status"] == "COMPLETED"
    missing = {"externalId": unique("bytes"), "images": [{"source": {"fileKey": "nope"}}]}
    r = await api.post(
        "/products",
        data={"data": json.dumps(missing)},
        files={"front": ("front.png", tee, "image/png")},
    )
    error(r, 400, "MULTIPART_FILE_NOT_FOUND")


# --- try-ons -------------------------------------------------------------------------------


async def test_reference_first_then_upsert_on_miss(api: httpx.AsyncClient, target: Target) -> None:
    """Genlook's documented pattern: reference by externalId, on 404 PRODUCT_NOT_FOUND send
    the full product; the next reference finds it."""
    image_id = (await upload(api))["imageId"]
    pid = unique("ref")
    ref = {"products": [{"externalId": pid}], "person": person(image_id)}
    error(await api.post("/try-on", json=ref), 404, "PRODUCT_NOT_FOUND")
    full = {
        "products": [
            {"externalId": pid, "title": "Tee", "images": [{"source": {"url": target.asset()}}]}
        ],
        "person": person(image_id),
        "externalUserId": "u-ref",
        "output": {"watermark": False, "keepForDays": 3},
    }
    r = await api.post("/try-on", json=full)
    assert r.status_code == 200, r.text
    started = r.json()
    assert set(started) == {"generationId", "status", "productExternalId"}
    assert started["status"] == "PENDING"
    assert started["productExternalId"] == pid
    done = await poll(api, started["generationId"])
    assert done["status"] == "COMPLETED"
    assert set(done) == {"generationId", "status", "createdAt", "updatedAt", "resultImageUrl"}
    async with httpx.AsyncClient(timeout=30) as plain:
        image = await plain.get(done["resultImageUrl"])
        assert image.status_code == 200
        assert image.headers["content-type"].startswith("image/")
    r = await api.post("/try-on", json=ref)
    assert r.status_code == 200, r.text
    assert (await poll(api, r.json()["generationId"]))["status"] == "COMPLETED"
    product = (await api.get(f"/products/{pid}")).json()
    assert product["validForDays"] == 15  # inline products: 15 days from last use
    assert product["lastUsedAt"] is not None


async def test_one_shot_product(api: httpx.AsyncClient, target: Target) -> None:
    image_id = (await upload(api))["imageId"]
    body = {
        "products": [{"title": "Tee", "images": [{"source": {"url": target.asset()}}]}],
        "person": person(image_id),
    }
    r = await api.post("/try-on", json=body)
    assert r.status_code == 200, r.text
    anon = r.json()["productExternalId"]
    assert anon.startswith("_anon_")
    assert len(anon) == len("_anon_") + 32
    got = await api.get(f"/products/{anon}")
    assert got.status_code == 200, got.text
    assert got.json()["validForDays"] == 7
    listed = (await api.get("/products", params={"limit": 200})).json()["items"]
    assert anon not in {p["externalId"] for p in listed}
    assert (await poll(api, r.json()["generationId"]))["status"] == "COMPLETED"


async def test_deprecated_body_shapes(api: httpx.AsyncClient, target: Target) -> None:
    image_id = (await upload(api))["imageId"]
    legacy = {
        "product": {
            "externalId": unique("old"),
            "title": "Tee",
            "images": [{"url": target.asset()}],
        },
        "customer": {"id": image_id},
        "customerId": "legacy-user",
        "useWatermark": False,
        "retentionDays": 3,
    }
    r = await api.post("/try-on", json=legacy)
    assert r.status_code == 200, r.text
    assert (await poll(api, r.json()["generationId"]))["status"] == "COMPLETED"
    source_form = {
        "product": {"externalId": legacy["product"]["externalId"]},
        "customer": {"source": {"id": image_id}},
    }
    r = await api.post("/try-on", json=source_form)
    assert r.status_code == 200, r.text


async def test_multipart_try_on_with_file_keys(api: httpx.AsyncClient, target: Target) -> None:
    tee = await target.asset_bytes()
    data = {
        "products": [
            {"externalId": unique("mp"), "title": "Tee", "images": [{"source": {"fileKey": "tee"}}]}
        ],
        "person": {"image": {"source": {"fileKey": "me"}}},
    }
    r = await api.post(
        "/try-on",
        data={"data": json.dumps(data)},
        files={"tee": ("tee.png", tee, "image/png"), "me": ("me.jpg", person_jpeg(), "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    assert (await poll(api, r.json()["generationId"]))["status"] == "COMPLETED"


async def test_try_on_request_errors(api: httpx.AsyncClient, target: Target) -> None:
    image_id = (await upload(api))["imageId"]
    url = target.asset()
    inline = {"externalId": unique("e"), "images": [{"source": {"url": url}}]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"products": [inline]}, 400, "CUSTOMER_IMAGE_REQUIRED"),
        ({"productId": "x", "customerImageId": image_id}, 400, "CUSTOMER_IMAGE_REQUIRED"),
        ({"products": [inline, inline], "person": person(image_id)}, 400, "VALIDATION_FAILED"),
        (
            {"products": [inline], "person": {"image": {"source": {"id": image_id, "url": url}}}},
            400,
            "VALIDATION_FAILED",
        ),
        (
            {"products": [{"externalId": unique("e"), "title": "x"}], "person": person(image_id)},
            400,
            "PRODUCT_IMAGES_REQUIRED",
        ),
        (
            {
                "products": [{"externalId": unique("e"), "images": [{"source": {}}]}],
                "person": person(image_id),
            },
            400,
            "INVALID_IMAGE_INPUT",
        ),
        (
            {"products": [inline], "person": {"image": {"source": {"fileKey": "gone"}}}},
            400,
            "MULTIPART_FILE_NOT_FOUND",
        ),
        (
            {"products": [{**inline, "externalId": "_anon_mine"}], "person": person(image_id)},
            409,
            "RESERVED_EXTERNAL_ID",
        ),
        ({"products": [inline], "person": person("img_unknown")}, 404, "IMAGE_NOT_FOUND"),
        (
            {"products": [inline], "person": person(image_id), "output": {"keepForDays": 5}},
            400,
            "VALIDATION_FAILED",
        ),
    ]
    for body, status, code in cases:
        error(await api.post("/try-on", json=body), status, code)
    body = error(
        await api.post("/try-on", json={"products": [], "person": person(image_id)}),
        400,
        "VALIDATION_FAILED",
    )
    assert body["details"][0]["path"] == "products"
    error(
        await api.post(
            "/try-on", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "VALIDATION_FAILED",
    )


async def test_insufficient_credits(api: httpx.AsyncClient, target: Target) -> None:
    image_id = (await upload(api))["imageId"]
    target.out_of_credits()
    inline = {
        "externalId": unique("nc"),
        "title": "Tee",
        "images": [{"source": {"url": target.asset()}}],
    }
    body = {"products": [inline], "person": person(image_id)}
    error(await api.post("/try-on", json=body), 402, "INSUFFICIENT_CREDITS")
    error(await api.post("/try-on/sync", json=body), 402, "INSUFFICIENT_CREDITS")
    # Nothing was made: the product is not in the catalog.
    error(await api.get(f"/products/{inline['externalId']}"), 404, "PRODUCT_NOT_FOUND")


async def test_sync_completed_200(api: httpx.AsyncClient, target: Target) -> None:
    image_id = (await upload(api))["imageId"]
    pid = unique("sync")
    body = {
        "products": [
            {"externalId": pid, "title": "mock", "images": [{"source": {"url": target.asset()}}]}
        ],
        "person": person(image_id),
    }
    r = await api.post("/try-on/sync", json=body, timeout=100)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "COMPLETED"
    assert done["productExternalId"] == pid
    assert done["resultImageUrl"]
    again = await api.get(f"/generations/{done['generationId']}")
    assert again.json()["status"] == "COMPLETED"


async def test_sync_failed_inside_window_is_200(api: httpx.AsyncClient, target: Target) -> None:
    image_id = (await upload(api))["imageId"]
    body = {
        "products": [{"title": "x", "images": [{"source": {"url": "http://127.0.0.1:9/x.png"}}]}],
        "person": person(image_id),
    }
    r = await api.post("/try-on/sync", json=body, timeout=100)
    assert r.status_code == 200, r.text
    failed = r.json()
    assert failed["status"] == "FAILED"
    assert failed["errorCode"] == "PRODUCT_IMAGE_FETCH_FAILED"
    assert failed["errorMessage"]
    assert "resultImageUrl" not in failed


async def test_sync_still_running_202(api: httpx.AsyncClient, target: Target) -> None:
    # 90 Genlook seconds = 0.9 s here; the generation takes far longer.
    target.emulator.reset(durationMedian=3000, durationSigma=0.01, credits=CREDITS)
    try:
        image_id = (await upload(api))["imageId"]
        body = {
            "products": [
                {
                    "externalId": unique("slow"),
                    # A definition of its own: the gateway would answer a known one from the
                    # result it already holds (docs/results.md), with no generation to wait for.
                    "title": unique("Slow tee"),
                    "images": [{"source": {"url": target.asset()}}],
                }
            ],
            "person": person(image_id),
        }
        r = await api.post("/try-on/sync", json=body, timeout=100)
        assert r.status_code == 202, r.text
        running = r.json()
        assert running["status"] in ("PENDING", "PROCESSING")
        assert "resultImageUrl" not in running
        again = await api.get(f"/generations/{running['generationId']}")
        assert again.status_code == 200
    finally:
        target.emulator.reset(credits=CREDITS)


async def test_generation_not_found_and_other_account(
    api: httpx.AsyncClient, target: Target
) -> None:
    error(await api.get("/generations/cm_unknown_generation"), 404, "GENERATION_NOT_FOUND")
    image_id = (await upload(api))["imageId"]
    body = {
        "products": [
            {
                "externalId": unique("mine"),
                "title": "mock",
                "images": [{"source": {"url": target.asset()}}],
            }
        ],
        "person": person(image_id),
    }
    r = await api.post("/try-on", json=body)
    assert r.status_code == 200, r.text
    async with target.client(target.other_key) as other:
        status, code = DELIBERATE["cross_account"][target.name]
        error(await other.get(f"/generations/{r.json()['generationId']}"), status, code)


async def test_sync_client_leaving_cancels_nothing(api: httpx.AsyncClient, target: Target) -> None:
    """The caller gives up on `/try-on/sync` before the answer: the generation still runs to
    its end (at Genlook, and at the gateway, whose worker took it from the queue)."""
    target.emulator.reset(durationMedian=100, durationSigma=0.01, credits=CREDITS)
    try:
        image_id = (await upload(api))["imageId"]
        body = {
            "products": [
                {"title": unique("Slow tee"), "images": [{"source": {"url": target.asset()}}]}
            ],
            "person": person(image_id),
        }
        with pytest.raises(httpx.ReadTimeout):
            await api.post("/try-on/sync", json=body, timeout=httpx.Timeout(30, read=0.2))
        for _ in range(200):
            made = target.emulator.control("GET", "generations")["items"]
            if made and made[0]["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.05)
        assert [g["status"] for g in made] == ["COMPLETED"]
    finally:
        target.emulator.reset(credits=CREDITS)


async def test_a_refused_try_on_keeps_no_product_image(
    api: httpx.AsyncClient, target: Target
) -> None:
    """A multipart try-on whose product image was stored, then refused (unknown photo): the
    stored image goes too (at the gateway: nothing new in its result store's index)."""
    tee = await target.asset_bytes()
    store = sync_redis.Redis.from_url(TEST_REDIS_URL)

    def product_images() -> set[bytes]:
        keys = store.zrange("tryon:results:expiry", 0, -1)
        return {k for k in keys if k.startswith(b"product-images/")}

    before = product_images()
    data = {
        "products": [{"externalId": unique("gone"), "images": [{"source": {"fileKey": "tee"}}]}],
        "person": person("img_unknown"),
    }
    r = await api.post(
        "/try-on", data={"data": json.dumps(data)}, files={"tee": ("t.png", tee, "image/png")}
    )
    error(r, 404, "IMAGE_NOT_FOUND")
    error(await api.get(f"/products/{data['products'][0]['externalId']}"), 404, "PRODUCT_NOT_FOUND")
    assert product_images() == before  # the emulator stores nothing there: trivially
    store.close()
