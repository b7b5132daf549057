"""`POST /images/upload` (Genlook's form, the gateway's photo pipeline) and the two keyless,
signed links this surface hands out: an upload's preview (`imageUrl`) and a product image
sent as bytes (which Genlook fetches)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from genlook_wire import normalize
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse

from service.api.deps import resources
from service.api.genlook_compat.body import is_multipart
from service.api.genlook_compat.context import genlook_caller
from service.api.genlook_compat.openapi import GENLOOK_KEY, errors
from service.api.images import ImageForm, read_form, read_photo, store_photo
from service.api.json_answer import documented, json_answer
from service.api.openapi import request_body
from service.domain_errors import InvalidInput, NotFound, Unavailable
from service.errors import ErrorBody
from service.genlook_compat.products import ProductImages
from service.genlook_compat.views import UploadView
from service.results.objects import StoreUnavailable
from service.tryons.intake import check_external_user_id

PREVIEW_PATH = "/tryon/v1/previews/"
_IMAGE = {
    200: ResponseSpec(
        data_container=bytes,
        media_type="image/*",
        description="The image.",
        generate_examples=False,
    ),
    403: ResponseSpec(
        data_container=ErrorBody,
        description="`RESULT_LINK_INVALID` (changed or foreign link) or `RESULT_LINK_EXPIRED`.",
        generate_examples=False,
    ),
    404: ResponseSpec(
        data_container=ErrorBody,
        description="`IMAGE_NOT_FOUND`: no longer kept (expired, or its user erased).",
        generate_examples=False,
    ),
} | errors(400, 503)


def _preview_subject(image_id: str) -> str:
    return f"preview:{image_id}"


def _gone() -> NotFound:
    return NotFound("IMAGE_NOT_FOUND", "This image is no longer kept.")


class GenlookImageController(Controller):
    tags = ["genlook-compat"]

    @post(
        "/images/upload",
        status_code=200,
        security=GENLOOK_KEY,
        responses=documented(UploadView, 200, "The photo's `imageId` and a preview link.")
        | errors(400, 401, 429, 503),
        dependencies=request_body(ImageForm, RequestEncodingType.MULTI_PART),
    )
    async def upload(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Upload a person photo (`file`; `crop`, `externalUserId`, `keepForDays`, and their
        deprecated names `customerId`, `retentionDays`)."""
        ctx = await genlook_caller(request)
        if not is_multipart(request):
            raise InvalidInput("FILE_REQUIRED", "Send the photo as multipart field `file`.")
        form = await read_form(request)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("FILE_REQUIRED", "The multipart field `file` is required.")
        options = normalize.upload_options({k: v for k, v in form.items() if isinstance(v, str)})
        if options.external_user_id is not None:
            check_external_user_id(options.external_user_id)
        res = ctx.surface.res
        image = await store_photo(
            res,
            ctx.principal.app,
            await read_photo(upload),
            crop=options.crop,
            user=options.external_user_id,
            keep=options.keep_for_days,
        )
        expires = int(res.photos.bytes_until(image))
        query = await res.links.signed_query(_preview_subject(image.id), expires)
        url = res.links.absolute(f"{PREVIEW_PATH}{quote(image.id, safe='')}?{query}")
        return json_answer(UploadView(image_id=image.id, image_url=url))

    @get(f"{PREVIEW_PATH.removeprefix('/tryon/v1')}{{image_id:str}}", security=[], responses=_IMAGE)
    async def preview(
        self,
        request: Request[Any, Any, Any],
        image_id: FromPath[str],
        exp: FromQuery[str | None] = None,
        sig: FromQuery[str | None] = None,
    ) -> ASGIResponse:
        """An uploaded photo as the gateway keeps it (cleaned), by the signed link of the
        upload's answer: no key, while the photo's bytes are kept."""
        res = resources(request)
        await res.links.check_subject(_preview_subject(image_id), exp, sig)
        found = await res.photos.preview(image_id)
        if found is None:
            raise _gone()
        image, data = found
        return ASGIResponse(
            body=data,
            media_type=image.content_type,
            headers={"Cache-Control": "private, max-age=300"},
        )

    @get(
        f"{ProductImages.PATH.removeprefix('/tryon/v1')}{{name:str}}",
        security=[],
        responses=_IMAGE,
    )
    async def product_image(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        exp: FromQuery[str | None] = None,
        sig: FromQuery[str | None] = None,
    ) -> ASGIResponse:
        """A product image sent as bytes, by the signed link the gateway gave Genlook."""
        res = resources(request)
        await res.links.check_subject(ProductImages.subject(name), exp, sig)
        try:
            chunks = await res.results.read(ProductImages.object_key(name))
        except StoreUnavailable:
            raise Unavailable(
                "RESULT_STORE_UNAVAILABLE", "The store did not answer; retry.", retry_after=1
            ) from None
        if chunks is None:
            raise _gone()
        max_age = max(0, int(exp or 0) - int(time.time()))
        return ASGIStreamingResponse(
            iterator=chunks,
            headers={"Cache-Control": f"private, max-age={min(max_age, 86_400)}"},
            media_type="application/octet-stream",
        )
