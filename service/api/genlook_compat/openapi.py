"""How `/tryon/v1` is described in the OpenAPI document: its tag, its credential (`x-api-key`)
and what each error status means there, in Genlook's codes (errors.py maps the gateway's)."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import SecurityRequirement

from service.api.openapi import errors as base_errors

GENLOOK_KEY: list[SecurityRequirement] = [{"genlookApiKey": []}]

_MEANING = {
    400: "Invalid request, in Genlook's codes: `VALIDATION_FAILED` (per-field `details`), "
    "`FILE_REQUIRED`, `INVALID_IMAGE`, `INVALID_IMAGE_INPUT`, `MULTIPART_FILE_NOT_FOUND`, "
    "`PRODUCT_IMAGES_REQUIRED`, `CUSTOMER_IMAGE_REQUIRED`, `EXTERNAL_ID_REQUIRED`.",
    401: "`MISSING_API_KEY` (no `x-api-key`) or `INVALID_API_KEY` (not an app's secret key).",
    402: "`INSUFFICIENT_CREDITS`: the Genlook balance the gateway last read is below one "
    "credit, or the app's daily cap is full.",
    403: "The link is not valid (`RESULT_LINK_INVALID`) or has expired (`RESULT_LINK_EXPIRED`).",
    404: "`PRODUCT_NOT_FOUND`, `GENERATION_NOT_FOUND` (also another app's), `IMAGE_NOT_FOUND`, "
    "or no such route.",
    409: "`RESERVED_EXTERNAL_ID`: externalIds starting with `_anon_` are made by the server.",
    429: "`RATE_LIMITED`: a rate limit of the app is full; see `Retry-After` (whole seconds).",
    502: "`UPSTREAM_UNAVAILABLE`: Genlook did not answer.",
    503: "`INTAKE_PAUSED` (ops paused intake), `STORE_UNAVAILABLE`, `IMAGE_PROCESSING_BUSY`; "
    "retry after `Retry-After`.",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    return base_errors(*statuses, meaning=_MEANING)
