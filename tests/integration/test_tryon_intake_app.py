"""The gateway app in process on Redis database 9: a product replaced after a try-on used it
is not taken from the per-process memory of lookups (the accept script catches the change)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from tests.conftest import assert_error


async def _put(client: AsyncTestClient[Any], title: str) -> None:
    body = {"title": title, "images": [{"source": {"url": "https://example.com/t.png"}}]}
    r = await client.put("/v1/products/tee", json=body)
    assert r.status_code in (200, 201), r.text


async def _stored_title(redis: Any, tryon_id: str) -> str:
    doc = msgspec.json.decode(await redis.hget(f"tryon:t:{tryon_id}", "doc"))
    title: str = doc["product"]["title"]
    return title


async def test_replaced_and_deleted_products_are_seen(
    client: AsyncTestClient[Any], redis: Any
) -> None:
    tryon = {
        "products": [{"externalId": "tee"}],
        "person": {"image": {"source": {"url": "https://example.com/p.jpg"}}},
    }
    await _put(client, "v1")
    first = await client.post("/v1/try-ons", json=tryon)
    assert first.status_code == 202, first.text
    assert await _stored_title(redis, first.json()["id"]) == "v1"

    await _put(client, "v2")
    second = await client.post("/v1/try-ons", json=tryon)
    assert second.status_code == 202, second.text
    assert await _stored_title(redis, second.json()["id"]) == "v2"

    assert (await client.delete("/v1/products/tee")).status_code in (200, 204)
    gone = await client.post("/v1/try-ons", json=tryon)
    assert (gone.status_code, gone.json()["code"]) == (404, "PRODUCT_NOT_FOUND")


async def test_an_unknown_product_is_not_found_on_every_catalog_route(
    client: AsyncTestClient[Any],
) -> None:
    for method in ("GET", "DELETE"):
        r = await client.request(method, "/v1/products/nope")
        assert_error(r, 404, "PRODUCT_NOT_FOUND")
        assert r.json()["message"] == "Product 'nope' not found."
