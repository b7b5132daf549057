"""`/v1/products`: each app's catalog, the definitions try-ons reference by `externalId`."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from service.api.decoding import decode_json
from service.api.deps import CTX, Ctx
from service.api.json_answer import documented
from service.api.openapi import AUTHENTICATED, SECRET_ONLY, errors, request_body
from service.products import CatalogProduct, ProductImageOut, product_not_found
from service.tryons.intake import check_external_id, product_definition
from service.tryons.models import ProductImageIn, ProductIn


class ProductPut(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    images: list[ProductImageIn]
    title: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class ProductOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    external_id: str
    images: list[ProductImageOut]
    created_at: float
    updated_at: float
    title: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class ProductPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[ProductOut]
    next_cursor: str | None
    has_more: bool
    count: int


def product_view(product: CatalogProduct) -> ProductOut:
    d = product.definition
    assert d.external_id is not None
    classifications = d.classifications or [None] * len(d.image_urls)
    return ProductOut(
        external_id=d.external_id,
        title=d.title,
        description=d.description,
        images=[
            ProductImageOut(source_url=url, order=i, classifications=c)
            for i, (url, c) in enumerate(zip(d.image_urls, classifications, strict=True))
        ],
        metadata=product.metadata,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


class ProductController(Controller):
    path = "/v1/products"
    tags = ["products"]
    dependencies = CTX
    security = SECRET_ONLY

    @put(
        "/{external_id:str}",
        status_code=200,
        responses=documented(ProductOut, 201, "Created: the product, new.")
        | errors(*AUTHENTICATED, 409, 413),
        dependencies=request_body(ProductPut),
    )
    async def put_product(
        self,
        request: Request[Any, Any, Any],
        external_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> Response[ProductOut]:
        """Create or replace a product definition (201 when created)."""
        principal, res = ctx.principal, ctx.res
        check_external_id(external_id, "externalId")
        body = decode_json(await request.body(), ProductPut)
        definition = product_definition(
            ProductIn(
                external_id=external_id,
                title=body.title,
                description=body.description,
                images=body.images,
            ),
            "",
        )
        product, created = await res.catalog.put(principal.app, definition, body.metadata)
        return Response(product_view(product), status_code=201 if created else 200)

    @get("/{external_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def get_product(
        self,
        external_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> ProductOut:
        principal, res = ctx.principal, ctx.res
        product = await res.catalog.get(principal.app, external_id)
        if product is None:
            raise product_not_found(external_id)
        return product_view(product)

    @delete("/{external_id:str}", responses=errors(*AUTHENTICATED, 404))
    async def delete_product(
        self,
        external_id: FromPath[str],
        ctx: NamedDependency[Ctx],
    ) -> None:
        principal, res = ctx.principal, ctx.res
        if not await res.catalog.delete(principal.app, external_id):
            raise product_not_found(external_id)

    @get("/", responses=errors(*AUTHENTICATED))
    async def list_products(
        self,
        ctx: NamedDependency[Ctx],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter()] = None,
    ) -> ProductPage:
        """Oldest first; pass `nextCursor` back as `cursor` for the next page."""
        principal, res = ctx.principal, ctx.res
        items, next_cursor = await res.catalog.page(principal.app, limit=limit, after=cursor)
        views = [product_view(p) for p in items]
        return ProductPage(
            items=views,
            next_cursor=next_cursor,
            has_more=next_cursor is not None,
            count=len(views),
        )
