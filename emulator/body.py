"""Reading request bodies with a hard cap enforced while reading.

A body over the cap is never buffered: the rest is read and thrown away (up to a drain limit)
so the client gets the 400 instead of a reset connection in the middle of its upload.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from genlook_wire.normalize import parse_json
from litestar import Request

# Litestar's own parser, fed from our capped stream instead of its unbounded `request.form()`.
from litestar._multipart import parse_content_header, parse_multipart_form
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException

from emulator.errors import ApiError, FieldIssue, validation_failed
from emulator.images import MAX_IMAGE_BYTES, too_large

JSON_LIMIT = 1024 * 1024
# Room for the form fields around one file.
UPLOAD_LIMIT = MAX_IMAGE_BYTES + 64 * 1024
# `data` plus a few inline files (person and product images).
MULTIPART_LIMIT = 4 * MAX_IMAGE_BYTES
DRAIN_LIMIT = 256 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


async def _chunks(request: Request[Any, Any, Any], limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] != "http.request":
            return
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        total += len(chunk)
        if total > limit:
            while more and total <= DRAIN_LIMIT:
                message = await request.receive()
                if message["type"] != "http.request":
                    break
                total += len(message.get("body", b""))
                more = message.get("more_body", False)
            raise BodyTooLarge
        if chunk:
            yield chunk


async def read_bytes(request: Request[Any, Any, Any], limit: int) -> bytes:
    return b"".join([chunk async for chunk in _chunks(request, limit)])


def _malformed(message: str) -> ApiError:
    return validation_failed([FieldIssue(path="", message=message)])


def is_multipart(request: Request[Any, Any, Any]) -> bool:
    content_type, _ = parse_content_header(request.headers.get("content-type", ""))
    return content_type == "multipart/form-data"


async def read_form(request: Request[Any, Any, Any], limit: int) -> Form:
    _, options = parse_content_header(request.headers.get("content-type", ""))
    boundary = options.get("boundary")
    if not boundary:
        raise _malformed("multipart/form-data without a boundary")
    try:
        parsed = await parse_multipart_form(_chunks(request, limit), boundary.encode())
    except (ClientException, UnicodeDecodeError):
        # A binary part without a filename cannot be a text field either.
        raise _malformed("Malformed multipart/form-data body") from None
    form = Form()
    for name, value in parsed.items():
        first = value[0] if isinstance(value, list) else value
        if isinstance(first, UploadFile):
            form.files[name] = await first.read()
            await first.close()
        else:
            form.fields[name] = str(first)
    return form


async def read_json(request: Request[Any, Any, Any]) -> Any:
    try:
        return parse_json(await read_bytes(request, JSON_LIMIT))
    except BodyTooLarge:
        raise _malformed(f"JSON body exceeds {JSON_LIMIT} bytes") from None


async def read_payload(request: Request[Any, Any, Any]) -> tuple[Any, dict[str, bytes]]:
    """JSON body, or multipart with the JSON in the `data` field and files named by fileKey."""
    if not is_multipart(request):
        return await read_json(request), {}
    try:
        form = await read_form(request, MULTIPART_LIMIT)
    except BodyTooLarge:
        raise too_large() from None
    if "data" in form.fields:
        data = form.fields["data"].encode()
    elif "data" in form.files:
        # Browsers' FormData sends a Blob as a file part.
        data = form.files.pop("data")
    else:
        raise validation_failed([FieldIssue(path="data", message="Required")])
    return parse_json(data, "data"), form.files
