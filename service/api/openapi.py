"""What the OpenAPI document says about errors and credentials, declared once for every route.

Every error the gateway answers is the one envelope `ErrorBody` (service/errors.py); a route
lists the statuses it can answer with `responses=errors(...)` (merged with its success answer).
Listing 400 also replaces the `{status_code, detail, extra}` answer Litestar documents for any
handler with a parameter: the gateway maps validation errors to the envelope instead.

Credentials, as service/auth.py and service/api/ops.py read them: a secret key or a publishable
key in `Authorization: Bearer`, the end user's token in `X-Tryon-Token`, an admin token for the
ops API. A route's `security=` names which it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.params import Body

from service.errors import ErrorBody

# What each status means at this gateway, with the codes it carries (docs/pipeline.md lists
# them all). Statuses Litestar itself answers (404 unknown path, 413 body over the route's cap)
# come in the same envelope (service/errors.py).
_MEANING = {
    400: "Invalid request: `VALIDATION_FAILED` (per-field `details`), `MALFORMED_JSON`, or a "
    "code naming what is wrong (`INVALID_IMAGE`, `FILE_REQUIRED`, `CALLBACK_URL_INVALID`...).",
    401: "No valid credential: `MISSING_API_KEY`, `INVALID_API_KEY`, `TOKEN_REQUIRED`, "
    "`INVALID_TOKEN`, `TOKEN_EXPIRED`, `ADMIN_TOKEN_REQUIRED`.",
    402: "A credit limit is full (the token's try-ons, the app's daily cap, the anonymous "
    "daily allowance).",
    403: "The credential may not do this: `SECRET_KEY_REQUIRED` (a publishable key on a "
    "server route), `ORIGIN_NOT_ALLOWED`, an end user's token asking for another user or "
    "product, an app key on the ops API.",
    404: "Not found (another app's or user's resource answers the same), or no such route.",
    409: "Conflicts with the current state (`IDEMPOTENCY_KEY_REUSED`, `TRYON_NOT_CANCELABLE`, "
    "`RETRY_WOULD_SPEND_CREDIT`...).",
    413: "`PAYLOAD_TOO_LARGE`: the body is over the route's limit.",
    415: "`UNSUPPORTED_MEDIA_TYPE`: the route takes another content type.",
    422: "`IMAGE_TOO_LARGE`: the photo has more pixels, or needs more memory to decode, than "
    "the gateway decodes.",
    429: "`RATE_LIMITED`: a per-user, per-app, per-IP or upload rate is full; see `Retry-After`.",
    502: "`UPSTREAM_UNAVAILABLE`: Genlook did not answer.",
    503: "`STORE_UNAVAILABLE` (Redis unreachable), `INTAKE_PAUSED` or `IMAGE_PROCESSING_BUSY` "
    "(photo decoding at its memory budget); retry after `Retry-After`.",
}


def errors(*statuses: int, meaning: Mapping[int, str] = _MEANING) -> dict[int, ResponseSpec]:
    """`responses=` for a route that can answer these statuses, each in the one envelope;
    `meaning`: what each status says there (the gateway's codes by default)."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody, description=meaning[status], generate_examples=False
        )
        for status in statuses
    }


def request_body(
    model: Any, media_type: RequestEncodingType = RequestEncodingType.JSON
) -> dict[str, Provide]:
    """`dependencies=` documenting the body of a route that reads and decodes it itself (with
    msgspec, errors in the envelope: service/api/decoding.py). Litestar documents the `data`
    parameter of a route's dependencies as its request body; the handler never names this
    dependency, so Litestar never resolves it and the body is read only by the handler."""

    async def documented_body(data: Any) -> None:
        return None

    documented_body.__annotations__ = {
        "data": Annotated[model, Body(media_type=media_type)],
        "return": None,
    }
    return {"documented_body": Provide(documented_body)}


@dataclass
class OptionalBody(Operation):
    """`operation_class=` for a route whose body may be left out (every field has a default):
    Litestar marks every documented body required."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


def event_stream(component: str, events: list[str], description: str) -> type[Operation]:
    """`operation_class=` for a route answering 200 with Server-Sent Events named `events`,
    each `data` the JSON of the schema `component`. OpenAPI 3.1 describes an event stream by
    the schema of one event (`{event, data, id}`), which Litestar cannot derive from a
    handler returning `ServerSentEvent`."""
    one_event = Schema(
        type=OpenAPIType.OBJECT,
        required=["data"],
        properties={
            "event": Schema(type=OpenAPIType.STRING, enum=list(events)),
            "id": Schema(type=OpenAPIType.STRING),
            "data": Schema(
                type=OpenAPIType.STRING,
                content_media_type="application/json",
                content_schema=Reference(ref=f"#/components/schemas/{component}"),
            ),
        },
    )

    @dataclass
    class EventStream(Operation):
        def __post_init__(self) -> None:
            self.responses = {
                **(self.responses or {}),
                "200": OpenAPIResponse(
                    description=description,
                    content={"text/event-stream": OpenAPIMediaType(schema=one_event)},
                ),
            }

    return EventStream


# Every route behind a credential (key or admin token) can answer these: a bad parameter or body,
# a missing or wrong credential, a Redis outage.
AUTHENTICATED = (400, 401, 403, 503)
# ... and a browser route can also hit its app's rate limits.
BROWSER = (*AUTHENTICATED, 429)

_SCHEMES = {
    "secretKey": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="sk_...",
        description="An app's secret key, for servers: every route of its app.",
    ),
    "publishableKey": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="pk_...",
        description="An app's publishable key, for browsers: only the browser-safe routes, "
        "from the app's allowed origins, with an end-user token (or anonymously, when the "
        "app allows it).",
    ),
    "endUserToken": SecurityScheme(
        type="apiKey",
        name="X-Tryon-Token",
        security_scheme_in="header",
        description="An end user's token, minted by `POST /v1/sessions` or signed offline "
        "(ES256); sent with the publishable key.",
    ),
    "genlookApiKey": SecurityScheme(
        type="apiKey",
        name="x-api-key",
        security_scheme_in="header",
        description="An app's secret key sent as Genlook's key is, on Genlook's API at "
        "`/tryon/v1` (docs/genlook-compat.md).",
    ),
    "adminToken": SecurityScheme(
        type="http",
        scheme="bearer",
        description="An operator's token from `OPS_ADMIN_TOKENS`; app keys never open the ops API.",
    ),
}
COMPONENTS = Components(security_schemes=dict(_SCHEMES))

SECRET_ONLY: list[SecurityRequirement] = [{"secretKey": []}]
BROWSER_SAFE: list[SecurityRequirement] = [
    {"secretKey": []},
    {"publishableKey": [], "endUserToken": []},
    {"publishableKey": []},  # an app that allows anonymous try-ons
]
ADMIN_ONLY: list[SecurityRequirement] = [{"adminToken": []}]
