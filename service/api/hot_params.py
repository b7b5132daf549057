"""Parameters (and the body) the hot routes (create and read a try-on) read themselves,
documented in OpenAPI all the same.

Declared in a handler's signature, each header or query parameter makes Litestar extract and
validate it on every request: ~6k instructions for `Idempotency-Key` on POST /v1/try-ons and
~10k for `wait` on GET /v1/try-ons/{id} (callgrind, docs/benchmarks.md §3), most of it for a
parameter that is absent. Read by the handler, an absent one costs a dict lookup; a bad `wait`
gets the same 400 VALIDATION_FAILED, with `wait` as `details[].path`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.enums import ParamType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema

from service.domain_errors import validation_failed

IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
    description="The same key with the same body returns the same try-on.",
)
WAIT = Parameter(
    name="wait",
    param_in=ParamType.QUERY,
    required=False,
    schema=Schema(type=OpenAPIType.NUMBER, minimum=0, default=0),
    description="Hold up to this many seconds for a terminal state: at most the gateway's "
    "GATEWAY_MAX_WAIT_SECONDS (60 by default); more is 400 VALIDATION_FAILED.",
)


def documenting(*parameters: Parameter) -> type[Operation]:
    """An `operation_class` for a route decorator: the route's OpenAPI operation lists
    `parameters` besides those Litestar found in the signature."""

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*(self.parameters or []), *parameters]

    return DocumentedOperation


def wait_seconds(request: Request[Any, Any, Any]) -> float:
    """`?wait=N`: 0 to `GATEWAY_MAX_WAIT_SECONDS` seconds; 0 when absent."""
    if not request.scope["query_string"]:
        return 0.0
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise validation_failed("wait", "Expected a number") from None
    cap = request.app.state.settings.gateway.max_wait_seconds
    if not (math.isfinite(value) and 0 <= value <= cap):
        raise validation_failed("wait", f"Expected a number from 0 to {cap:g}")
    return value


def hot_headers(request: Request[Any, Any, Any]) -> tuple[str, str | None]:
    """(Content-Type, Idempotency-Key) in one pass over the raw headers: `request.headers`
    builds a header map the first time and is looked up again on every access."""
    content_type = idempotency_key = None
    for name, value in request.scope["headers"]:  # the first of a repeated header, as Litestar
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"idempotency-key" and idempotency_key is None:
            idempotency_key = value.decode("latin-1")
    return content_type or "", idempotency_key


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The whole body, at most `limit` bytes (413 beyond, however it is sent), read straight
    from `receive`: Litestar's `request.body()` goes through an async generator, its hooks and
    a second header lookup for Content-Length."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # a disconnect: nobody reads the answer (a 400)
            raise validation_failed("body", "The client left before sending all of it")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
