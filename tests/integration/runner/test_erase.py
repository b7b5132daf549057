"""An end user's erase reaches every try-on of their photo, in process: the gateway app
accepting, the worker's `TryOnRunner` generating and storing the result, the emulator over HTTP
(tests/integration/runner/conftest.py's Harness).
"""

from __future__ import annotations

from typing import Any

from service.namespacing import upstream_user_id

from tests.integration.runner.conftest import APP, Harness


def generation_of(h: Harness, generation_id: str) -> dict[str, Any]:
    found: dict[str, Any] = h.emulator.control("GET", f"generations/{generation_id}")
    return found


async def test_a_tryon_of_a_users_photo_is_theirs_though_it_named_no_user(
    harness: Harness,
) -> None:
    """A backend uploads ann's photo for her, then asks for a try-on of it without naming her:
    the try-on is hers. Her erase removes it, its stored result (a picture of her) and
    Genlook's copy, which was sent under her (namespaced) id."""
    h = harness
    await h.put_product()
    photo = await h.upload_photo(externalUserId="ann")
    tryon_id = await h.accept(photo)
    view = (await h.gateway.get(f"/v1/try-ons/{tryon_id}")).json()
    assert view["externalUserId"] == "ann"

    record = await h.drive(tryon_id)
    assert record.status == "completed", record
    assert record.stored_result is not None
    assert await h.res.results.read(record.stored_result.key) is not None
    assert record.generation_id is not None
    upstream = generation_of(h, record.generation_id)
    assert upstream["externalUserId"] == upstream_user_id(APP, "ann")

    assert (await h.gateway.delete("/v1/customers/ann")).status_code == 204
    assert (await h.gateway.get(f"/v1/try-ons/{tryon_id}")).status_code == 404
    assert await h.res.results.read(record.stored_result.key) is None
    erased = generation_of(h, record.generation_id)
    assert erased["externalUserId"] is None
    assert erased.get("resultImageUrl") is None


async def test_a_tryon_of_a_photo_stored_for_no_user_stays_anonymous(harness: Harness) -> None:
    h = harness
    await h.put_product()
    tryon_id = await h.accept(await h.upload_photo())
    record = await h.drive(tryon_id)
    assert record.status == "completed", record
    assert record.external_user_id is None
    assert record.generation_id is not None
    assert generation_of(h, record.generation_id)["externalUserId"] is None
    assert (await h.gateway.delete("/v1/customers/ann")).status_code == 204
    assert (await h.gateway.get(f"/v1/try-ons/{tryon_id}")).status_code == 200


async def test_another_users_photo_is_refused_as_unknown(harness: Harness) -> None:
    """A try-on for bob of ann's photo: refused, as an unknown image (ann's erase would not
    reach a try-on filed under bob)."""
    h = harness
    await h.put_product()
    photo = await h.upload_photo(externalUserId="ann")
    body = {
        "products": [{"externalId": "tee"}],
        "person": {"image": {"source": {"id": photo}}},
        "externalUserId": "bob",
    }
    r = await h.gateway.post("/v1/try-ons", json=body)
    assert (r.status_code, r.json()["code"]) == (404, "IMAGE_NOT_FOUND")
