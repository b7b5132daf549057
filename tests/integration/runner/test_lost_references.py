"""Genlook lost what the gateway's caches point at (an expired or deleted product, a photo
past its retention or erased): the runner resends what Genlook needs, on the same try-on, and
no credit is lost (a 404 comes before any generation exists)."""

from __future__ import annotations

from service.namespacing import upstream_product_id, upstream_user_id

from tests.integration.runner.conftest import APP, Harness, error_code


async def test_a_product_genlook_lost_is_resent_inline(harness: Harness) -> None:
    photo = await harness.upload_photo()
    await harness.put_product()
    first = await harness.drive(await harness.accept(photo))
    assert first.status == "completed"
    upstream_id = upstream_product_id(APP, "tee")
    assert harness.counters()["productInlineUpserts"] == 1
    await harness.res.genlook.delete_product(upstream_id)

    tryon_id = await harness.accept(photo, reuse=False)  # not from the result cache
    record = await harness.drive(tryon_id)
    assert record.status == "completed"
    counters = harness.counters()
    # The cached reference got 404 and created nothing; the cache entry was dropped, so the
    # resend was the inline upsert (a reference would have failed again).
    assert harness.cost() == (3, 2, 2)
    assert (counters["productReferences"], counters["productInlineUpserts"]) == (0, 2)
    assert harness.retries == []
    # Genlook has the product again, and the cache says so: the next try-on is a reference.
    assert (await harness.drive(await harness.accept(photo, reuse=False))).status == "completed"
    assert harness.counters()["productReferences"] == 1


async def test_a_one_shot_product_genlook_lost_is_resent_in_full(harness: Harness) -> None:
    photo = await harness.upload_photo()
    url = f"{harness.emulator.root}/_emulator/assets/red-tee.png"
    product = {"title": "Red tee", "images": [{"source": {"url": url}}]}
    assert (await harness.drive(await harness.accept(photo, product))).status == "completed"
    # The one-shot id Genlook returned is cached now; Genlook answers 404 for it once.
    harness.fault(status=404, code="PRODUCT_NOT_FOUND", count=1)

    record = await harness.drive(await harness.accept(photo, product, reuse=False))
    assert record.status == "completed"
    counters = harness.counters()
    assert harness.cost() == (3, 2, 2)
    assert counters["productReferences"] == 0  # the resend carried the full definition


async def test_a_photo_genlook_lost_is_uploaded_again_once(harness: Harness) -> None:
    photo = await harness.upload_photo(externalUserId="u1")
    await harness.put_product()
    assert (await harness.drive(await harness.accept(photo))).status == "completed"
    # An erase of that end user upstream (or the photo's retention) removed the upload.
    await harness.res.genlook.delete_customer(upstream_user_id(APP, "u1") or "")

    record = await harness.drive(await harness.accept(photo, reuse=False))
    assert record.status == "completed"
    assert record.photo_reuploads == 1
    counters = harness.counters()
    assert counters["uploads"] == 2
    assert harness.cost() == (3, 2, 2)


async def test_a_photo_lost_twice_fails_the_tryon_without_a_credit(harness: Harness) -> None:
    tryon_id = await harness.tryon()
    harness.fault(status=404, code="IMAGE_NOT_FOUND", count=2)

    record = await harness.drive(tryon_id)
    assert error_code(record) == "IMAGE_NOT_FOUND"
    assert record.photo_reuploads == 1
    counters = harness.counters()
    assert counters["uploads"] == 2  # the first upload, and one more: never a third
    assert harness.cost() == (2, 0, 0)
    assert await harness.quota_held() == 0  # nothing spent: the cap's unit is given back


async def test_a_photo_whose_bytes_expired_fails_without_a_call(harness: Harness) -> None:
    """Genlook never had it, and the bytes to upload are gone (GATEWAY_PHOTO_BYTES_TTL)."""
    tryon_id = await harness.tryon()
    record = await harness.record(tryon_id)
    image = await harness.res.photos.get(APP, record.person.image_id or "")
    assert image is not None
    await harness.res.redis.delete(harness.res.keys.image_bytes(image.dedupe_key))

    record = await harness.drive(tryon_id)
    assert error_code(record) == "IMAGE_EXPIRED"
    assert harness.counters()["requests"] == {}
    assert await harness.quota_held() == 0
