"""`GET`/`HEAD /v1/results/{tryOnId}?exp=&sig=`: a try-on's stored result, by signed link.

No credential: the link is one (service/results/links.py), so a plain `<img src>` works. A link
that was changed or not made here is 403 `RESULT_LINK_INVALID`; one past its expiry is 403
`RESULT_LINK_EXPIRED`; a valid link whose result is gone (erased, swept) is 404
`RESULT_NOT_FOUND`. A result never changes: strong ETag, 304 on If-None-Match, cacheable by the
browser (`private`: it is someone's photo) until the link expires.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import HttpMethod, Request, route
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse

from service.api.deps import resources
from service.api.openapi import errors
from service.domain_errors import NotFound, Unavailable
from service.errors import ErrorBody
from service.results.objects import StoreUnavailable

# A day at most: a shorter browser cache costs a conditional request, never a wrong picture.
_MAX_AGE = 86_400


def _gone() -> NotFound:
    return NotFound("RESULT_NOT_FOUND", "This result is no longer stored.")


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@route(
    "/v1/results/{tryon_id:str}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=["results"],
    security=[],
    response_headers=[
        ResponseHeader(
            name="ETag", description="Strong validator of the image.", documentation_only=True
        ),
    ],
    responses={
        200: ResponseSpec(
            data_container=bytes,
            media_type="image/*",
            description="The image (JPEG, PNG or WebP), with ETag and Cache-Control.",
            generate_examples=False,
        ),
        304: ResponseSpec(data_container=None, description="Not modified (If-None-Match)."),
        403: ResponseSpec(
            data_container=ErrorBody,
            description="`RESULT_LINK_INVALID` (changed or foreign link) or `RESULT_LINK_EXPIRED`.",
            generate_examples=False,
        ),
        404: ResponseSpec(
            data_container=ErrorBody,
            description="`RESULT_NOT_FOUND`: the result was erased or its retention ended.",
            generate_examples=False,
        ),
    }
    | errors(400, 503),
)
async def result(
    request: Request[Any, Any, Any],
    tryon_id: FromPath[str],
    exp: FromQuery[str | None] = None,
    sig: FromQuery[str | None] = None,
) -> ASGIResponse:
    """The stored result image of a try-on, by the signed link its views carry."""
    res = resources(request)
    await res.links.check(tryon_id, exp, sig)
    record = await res.store.get(tryon_id)
    stored = None if record is None else record.stored_result
    if stored is None or stored.expires_at < time.time():
        raise _gone()
    expires = int(exp or 0)
    max_age = max(0, min(_MAX_AGE, expires - int(time.time())))
    headers = {
        "ETag": stored.etag,
        "Cache-Control": f"private, max-age={max_age}, immutable",
    }
    if _matches(request.headers.get("if-none-match"), stored.etag):
        return ASGIResponse(status_code=304, headers=headers)
    headers["Content-Length"] = str(stored.size)
    if request.method == HttpMethod.HEAD:
        # The record answers a HEAD; the object is read only for a body.
        return ASGIResponse(status_code=200, headers=headers, media_type=stored.content_type)
    try:
        chunks = await res.results.read(stored.key)
    except StoreUnavailable:
        raise Unavailable(
            "RESULT_STORE_UNAVAILABLE", "The result store did not answer; retry.", retry_after=1
        ) from None
    if chunks is None:
        raise _gone()
    return ASGIStreamingResponse(
        iterator=chunks, status_code=200, headers=headers, media_type=stored.content_type
    )
