"""Genlook's request bodies: JSON, or multipart with the JSON in `data` and each file in the
part its `fileKey` names; read under the gateway's caps (413 -> INVALID_IMAGE: errors.py)."""

from __future__ import annotations

from typing import Any

from genlook_wire.errors import FieldIssue, validation_failed
from genlook_wire.normalize import parse_json
from litestar import Request
from litestar.datastructures import UploadFile

from service.api.hot_params import read_body
from service.api.images import read_form, read_photo

JSON_LIMIT = 1024 * 1024
# `data` plus a few inline files (the person and product images), as Genlook allows.
MULTIPART_LIMIT = 4 * 10 * 1024 * 1024 + 64 * 1024


def is_multipart(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def read_payload(request: Request[Any, Any, Any]) -> tuple[Any, dict[str, bytes], bytes]:
    """(the decoded JSON, the files by part name, the JSON's bytes)."""
    if not is_multipart(request):
        body = await read_body(request, JSON_LIMIT)
        return parse_json(body), {}, body
    form = await read_form(request)
    files: dict[str, bytes] = {}
    raw: bytes | None = None
    for name, value in form.multi_items():
        if name == "data":
            # Browsers' FormData sends a Blob as a file part.
            raw = value.encode() if isinstance(value, str) else await value.read()
        elif isinstance(value, UploadFile) and name not in files:
            files[name] = await read_photo(value)
    if raw is None:
        raise validation_failed([FieldIssue(path="data", message="Required")])
    return parse_json(raw, "data"), files, raw
