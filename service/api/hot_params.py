"""Parameters the hot routes (create and read a try-on) read themselves, documented in OpenAPI
all the same.

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
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema

from service.errors import validation_failed

MAX_WAIT_SECONDS = 60.0

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
    schema=Schema(type=OpenAPIType.NUMBER, minimum=0, maximum=MAX_WAIT_SECONDS, default=0),
    description="Hold up to this many seconds for a terminal state.",
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
    """`?wait=N`: 0 to 60 seconds; 0 when absent."""
    if not request.scope["query_string"]:
        return 0.0
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise validation_failed("wait", "Expected a number") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_WAIT_SECONDS):
        raise validation_failed("wait", f"Expected a number from 0 to {MAX_WAIT_SECONDS:g}")
    return value
