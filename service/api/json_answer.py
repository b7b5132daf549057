"""JSON answers the hot routes build themselves: encoded once by msgspec and handed to Litestar
as a finished ASGI response, with the same bytes and headers Litestar would send.

A handler that returns a Struct makes Litestar build a `Response` around it, resolve its
serializer, headers and cookies, then convert it to an ASGI response: ~39k instructions per
request (callgrind, docs/benchmarks.md §3). The route's OpenAPI answer is declared with
`documented`, since the return annotation no longer names the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.response.base import ASGIResponse

_encode = msgspec.json.Encoder().encode


def json_answer(
    body: msgspec.Struct, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> ASGIResponse:
    return ASGIResponse(
        body=_encode(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers=dict(headers) if headers else None,
    )


def documented(
    model: type[msgspec.Struct], status: int, description: str
) -> dict[int, ResponseSpec]:
    """`responses=` for a route answering with `json_answer(model instance, status=status)`."""
    # No generated examples: they are random per process (each gateway would serve another
    # document) and ignore the field types msgspec knows.
    return {
        status: ResponseSpec(data_container=model, description=description, generate_examples=False)
    }
