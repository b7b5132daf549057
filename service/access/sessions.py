"""Minting end-user tokens for browsers: what `POST /v1/sessions` does, callable in-process
(the dev stack's demo backend uses it as a merchant's backend would use the route)."""

from __future__ import annotations

import time
from typing import Protocol

import msgspec

from service.access.tokens import MAX_TOKEN_MINUTES, TokenVerifier
from service.domain_errors import NotFound, validation_failed
from service.products import Catalog
from service.tryons.intake import check_external_user_id, check_identifier

MAX_PRODUCTS = 100
MAX_TRYONS = 1000


class SessionCreate(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    external_user_id: str
    expires_in_minutes: int = 15
    max_try_ons: int = 5
    # externalIds of the app's catalog this token may try on; omitted: any catalog product.
    products: list[str] | None = None


class SessionOut(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    token: str
    external_user_id: str
    expires_at: str
    max_try_ons: int
    products: list[str] | None = None


class SessionParts(Protocol):
    """What minting needs (service.resources.Resources has it): the wiring is passed down,
    never imported from here."""

    catalog: Catalog
    tokens: TokenVerifier


async def mint_session(res: SessionParts, app: str, body: SessionCreate) -> SessionOut:
    check_external_user_id(body.external_user_id)
    if not 1 <= body.expires_in_minutes <= MAX_TOKEN_MINUTES:
        raise validation_failed("expiresInMinutes", f"Must be 1 to {MAX_TOKEN_MINUTES}")
    if not 1 <= body.max_try_ons <= MAX_TRYONS:
        raise validation_failed("maxTryOns", f"Must be 1 to {MAX_TRYONS}")
    products = None
    if body.products is not None:
        if not 1 <= len(body.products) <= MAX_PRODUCTS:
            raise validation_failed("products", f"List 1 to {MAX_PRODUCTS} externalIds, or omit it")
        for i, external_id in enumerate(body.products):
            check_identifier(external_id, f"products.{i}")
        products = tuple(dict.fromkeys(body.products))
        for external_id in products:
            if await res.catalog.get(app, external_id) is None:
                raise NotFound(
                    "PRODUCT_NOT_FOUND",
                    f"No product {external_id!r} in this app's catalog (PUT /v1/products first).",
                )
    token, grant = await res.tokens.mint(
        app,
        body.external_user_id,
        minutes=body.expires_in_minutes,
        max_tryons=body.max_try_ons,
        products=products,
    )
    return SessionOut(
        token=token,
        external_user_id=grant.external_user_id,
        expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(grant.expires_at)),
        max_try_ons=grant.max_tryons,
        products=list(products) if products is not None else None,
    )
