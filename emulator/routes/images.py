"""POST /images/upload."""

from __future__ import annotations

import secrets
from typing import Any

from genlook_wire import normalize
from litestar import Request, post

from emulator import ids
from emulator.body import UPLOAD_LIMIT, BodyTooLarge, is_multipart, read_bytes, read_form
from emulator.deps import AccountDep, RuntimeDep, base_url
from emulator.errors import ApiError
from emulator.images import process_upload, too_large
from emulator.models import DAY, PersonImage, StoredFile


@post("/images/upload", opt={"endpoint": "upload_image"}, status_code=200)
async def upload_image(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    account: AccountDep,
) -> dict[str, str]:
    if not is_multipart(request):
        try:
            await read_bytes(request, UPLOAD_LIMIT)
        except BodyTooLarge:
            raise too_large() from None
        raise ApiError(400, "FILE_REQUIRED", "Send the photo as multipart/form-data field `file`.")
    try:
        form = await read_form(request, UPLOAD_LIMIT)
    except BodyTooLarge:
        raise too_large() from None
    if "file" in form.files:
        data = form.files["file"]
    elif "file" in form.fields:
        # Sent without a filename, so it arrived as text: keep its bytes for the image check.
        data = form.fields["file"].encode()
    else:
        raise ApiError(400, "FILE_REQUIRED", "The multipart field `file` is required.")
    options = normalize.upload_options(form.fields)
    user_id = options.external_user_id
    stored, kind = process_upload(data, crop=options.crop)
    keep = options.keep_for_days or account.retention_default_days
    now = runtime.clock.seconds()
    image_id = ids.image_id(keep, runtime.clock.now(), kind)
    preview_key = f"previews/{secrets.token_hex(12)}.{kind}"
    expires = now + keep * DAY
    runtime.store.files[preview_key] = StoredFile(
        key=preview_key,
        data=stored,
        content_type=f"image/{kind}",
        owner=account.api_key,
        external_user_id=user_id,
        expires_at=expires,
    )
    runtime.store.images[image_id] = PersonImage(
        image_id=image_id,
        owner=account.api_key,
        data=stored,
        kind=kind,
        external_user_id=user_id,
        expires_at=expires,
        preview_key=preview_key,
    )
    runtime.counters.uploads += 1
    return {"imageId": image_id, "imageUrl": runtime.file_url(base_url(request), preview_key)}
