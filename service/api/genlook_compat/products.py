"""`/products`: Genlook's catalog API over the gateway's catalog (service/genlook_compat/)."""

from __future__ import annotations

import math
import time
from typing import Any

from genlook_wire import normalize
from genlook_wire.zod import Issues, coerce_form_number
from litestar import Controller, Request, delete, get, post
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Parameter, Schema
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from msgspec import UnsetType

from service.api.genlook_compat.body import MULTIPART_LIMIT, read_payload
from service.api.genlook_compat.context import genlook_caller
from service.api.genlook_compat.openapi import GENLOOK_KEY, errors
from service.api.hot_params import documenting
from service.api.json_answer import documented, json_answer
from service.api.openapi import request_body
from service.genlook_compat.products import check_files, merge
from service.genlook_compat.views import GenlookProductPage, ProductView, product_view
from service.products import product_not_found

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

_PAGING = (
    Parameter(
        name="limit",
        param_in=ParamType.QUERY,
        required=False,
        schema=Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_LIMIT, default=50),
        description="Products per page.",
    ),
    Parameter(
        name="cursor",
        param_in=ParamType.QUERY,
        required=False,
        schema=Schema(type=OpenAPIType.STRING),
        description="`nextCursor` of the previous page.",
    ),
)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    issues = Issues()
    value = coerce_form_number(raw)
    limit = None
    if math.isnan(value):
        issues.add(["limit"], "Expected number, received nan")
    else:
        limit = issues.integer(value, ["limit"], minimum=1, maximum=MAX_LIMIT)
    issues.raise_if_any()
    assert limit is not None
    return limit


class GenlookProductController(Controller):
    path = "/products"
    tags = ["genlook-compat"]
    security = GENLOOK_KEY

    @post(
        "/",
        status_code=200,
        request_max_body_size=MULTIPART_LIMIT,
        responses=documented(ProductView, 200, "The product, created or updated.")
        | errors(400, 401, 409, 429, 503),
        dependencies=request_body(dict[str, Any]),
    )
    async def upsert(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """Create or update (partially) a product; JSON, or multipart with `data` and the
        image files its `fileKey`s name."""
        ctx = await genlook_caller(request)
        body, files, _ = await read_payload(request)
        patch = normalize.product_upsert(body)
        check_files(patch.file_keys(), files)
        assert patch.external_id is not None
        s, app, now = ctx.surface, ctx.principal.app, time.time()
        images = None
        if not isinstance(patch.images, UnsetType):
            images = await s.images.resolve(patch.images, files)
        existing = await s.catalog.get(app, patch.external_id, now)
        product = merge(
            existing, patch, images, external_id=patch.external_id, origin="catalog", now=now
        )
        await s.catalog.put(app, product)
        return json_answer(product_view(product))

    @get(
        "/",
        operation_class=documenting(*_PAGING),
        responses=documented(GenlookProductPage, 200, "One page of products (not one-shot ones).")
        | errors(400, 401, 429, 503),
    )
    async def list_products(self, request: Request[Any, Any, Any]) -> ASGIResponse:
        """The catalog, oldest first; pass `nextCursor` back as `cursor`."""
        ctx = await genlook_caller(request)
        limit = _limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor") or None
        items, next_cursor = await ctx.surface.catalog.page(
            ctx.principal.app, limit=limit, after=cursor, now=time.time()
        )
        views = [product_view(p) for p in items]
        page = GenlookProductPage(
            items=views, next_cursor=next_cursor, has_more=next_cursor is not None, count=len(views)
        )
        return json_answer(page)

    @get(
        "/{external_id:str}",
        responses=documented(ProductView, 200, "The product (one-shot ones too).")
        | errors(400, 401, 404, 429, 503),
    )
    async def get_product(
        self, request: Request[Any, Any, Any], external_id: FromPath[str]
    ) -> ASGIResponse:
        ctx = await genlook_caller(request)
        found = await ctx.surface.catalog.get(ctx.principal.app, external_id, time.time())
        if found is None:
            raise product_not_found(external_id)
        return json_answer(product_view(found))

    @delete("/{external_id:str}", status_code=204, responses=errors(400, 401, 404, 429, 503))
    async def delete_product(
        self, request: Request[Any, Any, Any], external_id: FromPath[str]
    ) -> None:
        """Delete a product; past generations keep what they were made with."""
        ctx = await genlook_caller(request)
        if not await ctx.surface.catalog.delete(ctx.principal.app, external_id):
            raise product_not_found(external_id)
