"""What a browser may ask of a try-on: a product of the app's catalog, by externalId, on a photo
it uploaded, as the end user its token names. Anything that would let a page spend credits on
arbitrary content or reach other URLs through the gateway is for secret keys only."""

from __future__ import annotations

import msgspec

from service.auth import Principal
from service.domain_errors import Forbidden
from service.tryons.models import TryOnCreate


def browser_tryon(principal: Principal, body: TryOnCreate) -> TryOnCreate:
    """The request as a browser may make it, bound to its end user; Forbidden otherwise."""
    for product in body.products:
        if product.title or product.description or product.images or not product.external_id:
            raise Forbidden(
                "INLINE_PRODUCT_FORBIDDEN",
                "Browsers try on products of the app's catalog, named by externalId only.",
            )
        grant = principal.grant
        if (
            grant is not None
            and grant.products is not None
            and product.external_id not in grant.products
        ):
            raise Forbidden("PRODUCT_NOT_ALLOWED", "This token does not allow that product.")
    source = body.person.image.source
    if source.url is not None:
        raise Forbidden(
            "PERSON_URL_FORBIDDEN",
            "Browsers upload the photo (POST /v1/images or a multipart file), not a URL.",
        )
    if body.callback_url is not None:
        raise Forbidden("CALLBACK_URL_FORBIDDEN", "Callback URLs are set by the app's backend.")
    return msgspec.structs.replace(
        body, external_user_id=end_user(principal, body.external_user_id)
    )


def end_user(principal: Principal, named: str | None) -> str | None:
    """The end user a browser acts as, whatever it names: its token's; another is Forbidden."""
    if named not in (None, principal.external_user_id):
        raise Forbidden("EXTERNAL_USER_MISMATCH", "The token is for another end user.")
    return principal.external_user_id
