"""`POST /v1/images`: a person photo, checked and stored; uploaded upstream once by a worker."""

from __future__ import annotations

import os
from typing import Any, Literal

import anyio
import msgspec
from litestar import Controller, Request, Router, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from service import jobs
from service.access.browser import end_user
from service.api.deps import BROWSER_CTX, Ctx
from service.api.openapi import BROWSER, BROWSER_SAFE, errors, request_body
from service.domain_errors import validation_failed
from service.errors import ApiError
from service.photos import StoredImage
from service.resources import Resources
from service.settings import Settings
from service.tryons.intake import check_external_user_id

_FORM_OVERHEAD = 64 * 1024
# How much of an oversize body is read and dropped before the 413 (see `_linger`).
_LINGER_BYTES = 16 * 1024 * 1024
_LINGER_SECONDS = 2.0


class ImageOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    id: str
    content_type: str
    size: int
    crop: bool
    keep_for_days: int
    external_user_id: str | None = None


class ImageForm(msgspec.Struct, frozen=True, rename="camel"):
    """The form `read_photo_form` reads, as the OpenAPI document describes it."""

    file: UploadFile
    crop: Literal["true", "false", "1", "0"] | msgspec.UnsetType = msgspec.UNSET
    keep_for_days: Literal["1", "3", "7"] | msgspec.UnsetType = msgspec.UNSET
    external_user_id: str | msgspec.UnsetType = msgspec.UNSET


def image_view(image: StoredImage) -> ImageOut:
    return ImageOut(
        id=image.id,
        content_type=image.content_type,
        size=image.size,
        crop=image.crop,
        keep_for_days=image.keep_for_days,
        external_user_id=image.external_user_id,
    )


def parse_crop(value: str | None) -> bool:
    if value is None:
        return True
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "1", "0"):
        raise validation_failed("crop", "Expected boolean")
    return lowered in ("true", "1")


def parse_keep_for_days(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if value.strip() not in ("1", "3", "7"):
        raise validation_failed("keepForDays", "Expected 1, 3 or 7")
    return int(value)


def upload_limit(request: Request[Any, Any, Any]) -> int:
    """GATEWAY_MAX_UPLOAD_BYTES: the largest photo file accepted."""
    settings: Settings = request.app.state.settings
    return settings.gateway.max_upload_bytes


def payload_too_large(limit: int) -> ApiError:
    # Closing the connection stops the client sending the rest: kept alive, the server would
    # read and discard the whole body, however long.
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"Photos are limited to {limit} bytes.",
        headers={"Connection": "close"},
    )


async def _linger(request: Request[Any, Any, Any]) -> None:
    """Read and drop a bounded rest of an oversize body before answering 413. A socket closed
    with unread data is reset, and a client still sending (most do not read before they have
    sent everything) would see the reset instead of the 413; a body a little over the cap is
    drained, so such a client gets the answer. A body announced far larger is not worth it."""
    cap = request.route_handler.resolve_request_max_body_size() or 0
    announced = request.content_length
    if announced is not None and announced > cap + _LINGER_BYTES:
        return
    left = _LINGER_BYTES
    with anyio.move_on_after(_LINGER_SECONDS):
        while left > 0:
            message = await request.receive()
            if message["type"] != "http.request":
                return
            left -= len(message["body"])
            if not message.get("more_body", False):
                return


async def read_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    """The multipart form, parsed as the body streams in (file parts spool to disk past 1 MB).
    The route's `request_max_body_size` is checked against Content-Length first, then counted
    chunk by chunk, so a huge or endless body is cut at the cap whatever it announced; then
    each file part is held to GATEWAY_MAX_UPLOAD_BYTES."""
    limit = upload_limit(request)
    try:
        form = await request.form()
    except RequestEntityTooLarge:
        await _linger(request)
        raise payload_too_large(limit) from None
    for _, value in form.multi_items():
        if isinstance(value, UploadFile) and _size(value) > limit:
            raise payload_too_large(limit)
    return form


def _size(upload: UploadFile) -> int:
    # Spooled in memory (up to 1 MB) or to a local temporary file: seeking is not I/O to wait on.
    size = upload.file.seek(0, os.SEEK_END)
    upload.file.seek(0)
    return size


async def read_photo(upload: UploadFile) -> bytes:
    """A file part of a form from `read_form` (so within GATEWAY_MAX_UPLOAD_BYTES)."""
    return await upload.read()


async def read_photo_form(request: Request[Any, Any, Any]) -> tuple[bytes, dict[str, str]]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the photo as multipart/form-data.")
    form = await read_form(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "FILE_REQUIRED", "The multipart field `file` is required.")
    data = await read_photo(upload)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return data, fields


class ImageController(Controller):
    path = "/v1/images"
    tags = ["images"]
    dependencies = BROWSER_CTX
    security = BROWSER_SAFE

    @post(
        "/",
        status_code=201,  # the body cap is the router's: `image_routes`
        responses=errors(*BROWSER, 413, 415, 422),
        dependencies=request_body(ImageForm, RequestEncodingType.MULTI_PART),
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[Ctx],
    ) -> ImageOut:
        """Upload a person photo (JPEG, PNG, WebP or HEIC, at most GATEWAY_MAX_UPLOAD_BYTES,
        10 MB by default)."""
        principal, res = ctx.principal, ctx.res
        await ctx.auth.count_upload(principal)  # before reading: abuse costs no decoding
        data, fields = await read_photo_form(request)
        crop = parse_crop(fields.get("crop"))
        keep = parse_keep_for_days(fields.get("keepForDays"))
        user = fields.get("externalUserId") or None
        if user is not None:
            check_external_user_id(user)
        if principal.is_browser:
            user = end_user(principal, user)
        image = await store_photo(res, principal.app, data, crop=crop, user=user, keep=keep)
        return image_view(image)


async def store_photo(
    res: Resources, app: str, data: bytes, *, crop: bool, user: str | None, keep: int | None
) -> StoredImage:
    """Clean and store an uploaded photo, and queue its one upload to Genlook."""
    image = await res.photos.save(app, data, crop=crop, external_user_id=user, keep_for_days=keep)
    await res.store.queue.enqueue(jobs.UPLOAD_PHOTO, image.id, job_id=jobs.photo_job_id(image.id))
    return image


def image_routes(settings: Settings) -> Router:
    """The upload route, its body capped at GATEWAY_MAX_UPLOAD_BYTES plus the form's framing
    (a route's own cap is fixed when its module is imported; a router's is built per app)."""
    return Router(
        path="/",
        route_handlers=[ImageController],
        request_max_body_size=settings.gateway.max_upload_bytes + _FORM_OVERHEAD,
    )
