"""Contract: every endpoint and client-reachable error code, real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from service.genlook import (
    AuthenticationError,
    CustomerImageFetchFailed,
    CustomerImageRequired,
    ExternalIdRequired,
    FilePart,
    FileRequired,
    GenerationFailed,
    GenerationNotFound,
    GenlookClient,
    ImageNotFound,
    InsufficientCredits,
    InvalidImage,
    InvalidImageInput,
    MultipartFileNotFound,
    Output,
    PermissionDenied,
    Person,
    ProductImage,
    ProductImagesRequired,
    ProductInput,
    ProductNotFound,
    ProductUpsert,
    ReservedExternalId,
    TryOnRequest,
    ValidationFailed,
)

from tests.conftest import Emulator
from tests.contract.conftest import UNFETCHABLE, MakeClient

AssetUrl = Callable[..., str]
POLL = 0.02


def ref(external_id: str, image_id: str, **kw: Any) -> TryOnRequest:
    return TryOnRequest(
        products=[ProductInput(external_id=external_id)],
        person=Person.from_image_id(image_id),
        **kw,
    )


async def upload(client: GenlookClient, person_jpeg: bytes, **kw: Any) -> str:
    up = await client.upload_image(person_jpeg, filename="me.jpg", content_type="image/jpeg", **kw)
    return up.image_id


# --- account ------------------------------------------------------------------------------------


async def test_get_credits(emulator: Emulator, make_client: MakeClient) -> None:
    emulator.reset(credits=7)
    credits = await make_client().get_credits()
    assert credits.credit_balance == 7


async def test_invalid_api_key(make_client: MakeClient) -> None:
    client = make_client(api_key="gk_wrong_key_000000000000000000000000000000000")
    with pytest.raises(AuthenticationError) as info:
        await client.get_credits()
    assert info.value.status == 401
    assert info.value.code == "INVALID_API_KEY"


class _StripKey(httpx.AsyncBaseTransport):
    """A real HTTP transport that drops the key header, to reach MISSING_API_KEY."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        del request.headers["x-api-key"]
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_missing_api_key(make_client: MakeClient) -> None:
    client = make_client(transport=_StripKey())
    with pytest.raises(AuthenticationError) as info:
        await client.get_credits()
    assert info.value.code == "MISSING_API_KEY"


# --- images -------------------------------------------------------------------------------------


async def test_upload_image(client: GenlookClient, person_jpeg: bytes) -> None:
    up = await client.upload_image(
        person_jpeg,
        filename="me.jpg",
        content_type="image/jpeg",
        crop=False,
        external_user_id="user-1",
        keep_for_days=3,
    )
    assert up.image_id
    assert up.image_url.startswith("http")
    async with httpx.AsyncClient() as plain:
        preview = await plain.get(up.image_url)
    assert preview.status_code == 200


async def test_upload_errors(client: GenlookClient, person_jpeg: bytes) -> None:
    with pytest.raises(InvalidImage) as bad:
        await client.upload_image(b"tiny", filename="x.jpg", content_type="image/jpeg")
    assert bad.value.status == 400
    with pytest.raises(ValidationFailed) as invalid:
        await client.upload_image(
            person_jpeg, filename="me.jpg", content_type="image/jpeg", keep_for_days=5
        )
    assert invalid.value.details  # FieldError list
    assert any("keepForDays" in d.path for d in invalid.value.details)


async def test_upload_without_file_part(client: GenlookClient, person_jpeg: bytes) -> None:
    with pytest.raises(FileRequired):
        await client.request_raw(
            "upload_image",
            "/images/upload",
            files={"photo": FilePart(person_jpeg, "me.jpg", "image/jpeg")},
        )


# --- try-ons ------------------------------------------------------------------------------------


async def test_reference_flow_completes_and_spends_one_credit(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    before = (await client.get_credits()).credit_balance
    image_id = await upload(client, person_jpeg)
    await client.upsert_product(
        ProductUpsert(
            external_id="shirt/42",
            title="Red tee",
            description="Soft cotton",
            images=[ProductImage.from_url(asset_url("red-tee"))],
        )
    )
    created = await client.create_try_on(
        ref("shirt/42", image_id, external_user_id="u1", output=Output(watermark=False))
    )
    assert created.status == "PENDING"
    assert created.product_external_id == "shirt/42"
    done = await client.wait_for_generation(created.generation_id, poll_interval=POLL)
    assert done.status == "COMPLETED"
    assert done.result_image_url
    assert done.created_at <= done.updated_at
    assert (await client.get_credits()).credit_balance == before - 1
    counters = emulator.counters()
    assert counters["generationsCreated"] == 1
    assert counters["requests"]["create_try_on"] == 1


async def test_unknown_reference_then_inline_upsert(
    client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg)
    with pytest.raises(ProductNotFound) as info:
        await client.create_try_on(ref("never-registered", image_id))
    assert info.value.status == 404
    inline = TryOnRequest(
        products=[
            ProductInput(
                external_id="never-registered",
                title="Hoodie",
                images=[ProductImage.from_url(asset_url("blue-hoodie"))],
            )
        ],
        person=Person.from_image_id(image_id),
    )
    created = await client.create_try_on(inline)
    assert created.product_external_id == "never-registered"
    # now the cheap reference works
    again = await client.create_try_on(ref("never-registered", image_id))
    assert again.generation_id != created.generation_id
    product = await client.get_product("never-registered")
    assert product.valid_for_days == 15


async def test_one_shot_product(
    client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg)
    created = await client.create_try_on(
        TryOnRequest(
            products=[
                ProductInput(title="Cap", images=[ProductImage.from_url(asset_url("green-cap"))])
            ],
            person=Person.from_image_id(image_id),
        )
    )
    assert created.product_external_id.startswith("_anon_")
    product = await client.get_product(created.product_external_id)
    assert product.external_id == created.product_external_id
    listed = [p.external_id async for p in client.iter_products()]
    assert created.product_external_id not in listed


async def test_multipart_try_on_with_file_keys(
    client: GenlookClient, person_jpeg: bytes, emulator: Emulator
) -> None:
    async with httpx.AsyncClient() as plain:
        tee = (await plain.get(f"{emulator.root}/_emulator/assets/red-tee.png")).content
    req = TryOnRequest(
        products=[ProductInput(external_id="mp-1", images=[ProductImage.from_file_key("product")])],
        person=Person.from_file_key("person"),
    )
    files = {
        "person": FilePart(person_jpeg, "me.jpg", "image/jpeg"),
        "product": FilePart(tee, "tee.png", "image/png"),
    }
    created = await client.create_try_on(req, files=files)
    done = await client.wait_for_generation(created.generation_id, poll_interval=POLL)
    assert done.status == "COMPLETED"
    with pytest.raises(MultipartFileNotFound):
        await client.create_try_on(req, files={"other": files["person"]})


async def test_try_on_request_errors(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg)
    url = asset_url("red-tee")
    with pytest.raises(ReservedExternalId) as reserved:
        await client.create_try_on(
            TryOnRequest(
                products=[
                    ProductInput(external_id="_anon_mine", images=[ProductImage.from_url(url)])
                ],
                person=Person.from_image_id(image_id),
            )
        )
    assert reserved.value.status == 409
    with pytest.raises(ProductImagesRequired):
        await client.create_try_on(
            TryOnRequest(
                products=[ProductInput(title="no image")], person=Person.from_image_id(image_id)
            )
        )
    with pytest.raises(InvalidImageInput):
        await client.request_raw(
            "create_try_on",
            "/try-on",
            body={
                "products": [{"title": "x", "images": [{"source": {}}]}],
                "person": {"image": {"source": {"id": image_id}}},
            },
        )
    with pytest.raises(CustomerImageRequired):
        await client.request_raw(
            "create_try_on", "/try-on", body={"products": [{"externalId": "x"}]}
        )
    with pytest.raises(CustomerImageFetchFailed):
        await client.create_try_on(
            TryOnRequest(
                products=[ProductInput(title="x", images=[ProductImage.from_url(url)])],
                person=Person.from_url(UNFETCHABLE),
            )
        )
    with pytest.raises(ImageNotFound) as missing:
        await client.create_try_on(
            TryOnRequest(
                products=[ProductInput(title="x", images=[ProductImage.from_url(url)])],
                person=Person.from_image_id("no/such/image.jpeg"),
            )
        )
    assert missing.value.status == 404
    with pytest.raises(ValidationFailed) as two:
        await client.create_try_on(
            TryOnRequest(
                products=[ProductInput(external_id="a"), ProductInput(external_id="b")],
                person=Person.from_image_id(image_id),
            )
        )
    assert two.value.details
    assert two.value.details[0].path.startswith("products")
    counters = emulator.counters()
    assert counters["generationsCreated"] == 0
    assert counters["creditsSpent"] == 0


async def test_insufficient_credits(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    emulator.reset(credits=0)
    image_id = await upload(client, person_jpeg)
    await client.upsert_product(
        ProductUpsert(external_id="p", images=[ProductImage.from_url(asset_url())])
    )
    with pytest.raises(InsufficientCredits) as info:
        await client.create_try_on(ref("p", image_id))
    assert info.value.status == 402
    assert info.value.code == "INSUFFICIENT_CREDITS"


async def test_failed_generation_refunds_the_credit(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes
) -> None:
    before = (await client.get_credits()).credit_balance
    image_id = await upload(client, person_jpeg)
    created = await client.create_try_on(
        TryOnRequest(
            products=[ProductInput(title="x", images=[ProductImage.from_url(UNFETCHABLE)])],
            person=Person.from_image_id(image_id),
        )
    )
    with pytest.raises(GenerationFailed) as info:
        await client.wait_for_generation(created.generation_id, poll_interval=POLL)
    assert info.value.error_code == "PRODUCT_IMAGE_FETCH_FAILED"
    assert info.value.error_message
    assert (await client.get_credits()).credit_balance == before
    counters = emulator.counters()
    assert counters["creditsSpent"] == 1
    assert counters["creditsRefunded"] == 1


async def test_get_generation_unknown_id_with_slash(client: GenlookClient) -> None:
    with pytest.raises(GenerationNotFound) as info:
        await client.get_generation("no/such/generation")
    assert info.value.status == 404


async def test_deprecated_singular_product_shape(
    client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg)
    body = {
        "product": {"externalId": "legacy-1", "title": "t", "images": [{"url": asset_url()}]},
        "customer": {"id": image_id},
        "customerId": "u-legacy",
        "useWatermark": False,
    }
    created = await client.request_raw("create_try_on", "/try-on", body=body)
    assert created["productExternalId"] == "legacy-1"
    done = await client.wait_for_generation(created["generationId"], poll_interval=POLL)
    assert done.status == "COMPLETED"


# --- sync ---------------------------------------------------------------------------------------


async def test_sync_completed_200(
    client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg)
    req = TryOnRequest(
        products=[ProductInput(external_id="s1", images=[ProductImage.from_url(asset_url())])],
        person=Person.from_image_id(image_id),
    )
    done = await client.create_try_on_sync(req)
    assert done.status == "COMPLETED"
    assert done.result_image_url
    assert done.product_external_id == "s1"


async def test_sync_still_running_202(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    # 90 emulator seconds = 0.9 s real at speed 100; make the generation far longer than that
    emulator.reset(durationMedian=3000, durationSigma=0.01)
    image_id = await upload(client, person_jpeg)
    req = TryOnRequest(
        products=[ProductInput(external_id="s2", images=[ProductImage.from_url(asset_url())])],
        person=Person.from_image_id(image_id),
    )
    running = await client.create_try_on_sync(req)
    assert running.status in ("PENDING", "PROCESSING")
    assert running.result_image_url is None
    again = await client.get_generation(running.generation_id)
    assert again.generation_id == running.generation_id


async def test_sync_failed_inside_window(client: GenlookClient, person_jpeg: bytes) -> None:
    image_id = await upload(client, person_jpeg)
    req = TryOnRequest(
        products=[ProductInput(title="x", images=[ProductImage.from_url(UNFETCHABLE)])],
        person=Person.from_image_id(image_id),
    )
    failed = await client.create_try_on_sync(req)
    assert failed.status == "FAILED"
    assert failed.error_code == "PRODUCT_IMAGE_FETCH_FAILED"


# --- products -----------------------------------------------------------------------------------


async def test_product_crud(client: GenlookClient, asset_url: AssetUrl) -> None:
    created = await client.upsert_product(
        ProductUpsert(
            external_id="cat/1",
            title="Tee",
            description="d",
            images=[ProductImage.from_url(asset_url("red-tee"))],
            metadata={"sku": "A1"},
        )
    )
    assert created.external_id == "cat/1"
    assert created.valid_for_days is None
    assert created.expires_at is None
    assert created.images
    assert created.images[0].source_url == asset_url("red-tee")
    updated = await client.upsert_product(ProductUpsert(external_id="cat/1", title="Tee 2"))
    assert updated.title == "Tee 2"
    assert updated.description == "d"  # partial update keeps the rest
    got = await client.get_product("cat/1")
    assert got.metadata == {"sku": "A1"}
    await client.delete_product("cat/1")
    with pytest.raises(ProductNotFound):
        await client.get_product("cat/1")


async def test_product_upsert_errors(client: GenlookClient, asset_url: AssetUrl) -> None:
    with pytest.raises(ExternalIdRequired):
        await client.request_raw(
            "upsert_product",
            "/products",
            body={"title": "x", "images": [{"source": {"url": asset_url()}}]},
        )
    with pytest.raises(ProductImagesRequired):
        await client.upsert_product(ProductUpsert(external_id="no-images", title="x"))
    with pytest.raises(ValidationFailed) as info:
        await client.request_raw(
            "upsert_product",
            "/products",
            body={
                "externalId": "v",
                "images": [{"source": {"url": asset_url()}}],
                "validForDays": "x",
            },
        )
    assert [d.path for d in info.value.details] == ["validForDays"]
    with pytest.raises(ReservedExternalId):
        await client.upsert_product(
            ProductUpsert(external_id="_anon_x", images=[ProductImage.from_url(asset_url())])
        )


async def test_list_and_iter_products_across_pages(
    client: GenlookClient, asset_url: AssetUrl
) -> None:
    ids = [f"page-{i}" for i in range(5)]
    for external_id in ids:
        await client.upsert_product(
            ProductUpsert(external_id=external_id, images=[ProductImage.from_url(asset_url())])
        )
    first = await client.list_products(limit=2)
    assert first.count == 2
    assert len(first.items) == 2
    assert first.has_more
    assert first.next_cursor
    seen = [p.external_id async for p in client.iter_products(page_size=2)]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    with pytest.raises(ValidationFailed):
        await client.list_products(limit=500)


async def test_product_expiry(
    emulator: Emulator, client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg)
    inline = TryOnRequest(
        products=[
            ProductInput(
                external_id="inline-1", title="t", images=[ProductImage.from_url(asset_url())]
            )
        ],
        person=Person.from_image_id(image_id),
    )
    await client.create_try_on(inline)
    await client.upsert_product(
        ProductUpsert(external_id="forever", images=[ProductImage.from_url(asset_url())])
    )
    product = await client.get_product("inline-1")
    assert product.expires_at is not None
    emulator.control("POST", "clock/advance", {"seconds": 16 * 86400})
    with pytest.raises(ProductNotFound):
        await client.get_product("inline-1")
    assert (await client.get_product("forever")).external_id == "forever"


async def test_cross_account_access_is_forbidden(
    emulator: Emulator, make_client: MakeClient, asset_url: AssetUrl
) -> None:
    other_key = "gk_other_account_000000000000000000000000000000"
    emulator.control("PUT", f"accounts/{other_key}", {"credits": 5})
    other = make_client(api_key=other_key)
    await other.upsert_product(
        ProductUpsert(external_id="theirs", images=[ProductImage.from_url(asset_url())])
    )
    with pytest.raises(PermissionDenied) as info:
        await make_client().get_product("theirs")
    assert info.value.status == 403
    assert info.value.code == "FORBIDDEN"


# --- customers ----------------------------------------------------------------------------------


async def test_delete_customer(
    client: GenlookClient, person_jpeg: bytes, asset_url: AssetUrl
) -> None:
    image_id = await upload(client, person_jpeg, external_user_id="gdpr/user")
    await client.upsert_product(
        ProductUpsert(external_id="p", images=[ProductImage.from_url(asset_url())])
    )
    created = await client.create_try_on(ref("p", image_id, external_user_id="gdpr/user"))
    done = await client.wait_for_generation(created.generation_id, poll_interval=POLL)
    assert done.result_image_url
    await client.delete_customer("gdpr/user")
    await client.delete_customer("gdpr/user")  # idempotent
    await client.delete_customer("nobody")
    after = await client.get_generation(created.generation_id)
    assert after.status == "COMPLETED"
    if after.result_image_url is not None:
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(after.result_image_url)).status_code == 404
