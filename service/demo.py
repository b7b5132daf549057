"""The demo storefront's data: a few products in the demo app's catalog, as a merchant would
list them, and the publishable key its page uses.

Their pictures are the emulator's drawn samples (`/_emulator/assets/<name>.png`): Genlook
downloads product images itself, and the emulator fetches only loopback URLs, so the demo
works on a machine with no network. Against the real Genlook the merchant's own catalog (with
public image URLs) takes their place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
from redis.asyncio import Redis

from service.access.models import Policy
from service.access.registry import AppRegistry, digest
from service.keys import Keys
from service.products import Catalog
from service.redis_client import connect_redis
from service.settings import Settings
from service.tryons.intake import product_definition
from service.tryons.models import ImageSourceIn, ProductDef, ProductImageIn, ProductIn


class DemoProduct(NamedTuple):
    external_id: str
    title: str
    description: str
    asset: str


DEMO_PRODUCTS = (
    DemoProduct(
        "red-tee",
        "Red tee",
        "A crew-neck cotton t-shirt in bright red, regular fit.",
        "red-tee.png",
    ),
    DemoProduct(
        "blue-hoodie",
        "Blue hoodie",
        "A heavyweight fleece hoodie in royal blue with a kangaroo pocket.",
        "blue-hoodie.png",
    ),
    DemoProduct(
        "green-cap",
        "Green cap",
        "A six-panel baseball cap in forest green with a curved brim.",
        "green-cap.png",
    ),
)


def emulator_asset_root(genlook_base_url: str) -> str:
    """`http://host:port/tryon/v1` (the emulator's API) -> where its sample pictures are."""
    root = genlook_base_url.rstrip("/").removesuffix("/tryon/v1")
    return f"{root}/_emulator/assets"


async def upsert_demo_catalog(catalog: Catalog, app: str, asset_root: str) -> list[ProductDef]:
    """Put the demo products in `app`'s catalog; idempotent (an unchanged product is left as
    it is, so every restart of the dev stack does not rewrite them)."""
    root = asset_root.rstrip("/")
    definitions = []
    for product in DEMO_PRODUCTS:
        # Built as `PUT /v1/products/{id}` builds it, so the two never disagree.
        definition = product_definition(
            ProductIn(
                external_id=product.external_id,
                title=product.title,
                description=product.description,
                images=[ProductImageIn(source=ImageSourceIn(url=f"{root}/{product.asset}"))],
            ),
            "",
        )
        current = await catalog.get(app, product.external_id)
        if current is None or current.definition != definition:
            await catalog.put(app, definition, {"demo": True})
        definitions.append(definition)
    return definitions


async def demo_publishable_key(
    registry: AppRegistry, redis: Redis, keys: Keys, app: str
) -> str | None:
    """The publishable key the demo page hands out for `app`: made on first use and kept in
    clear (a publishable key is public by design; every page using it shows it), made again if
    an operator revoked it. None when the app does not exist."""
    if await registry.get(app) is None:
        return None
    name = keys.demo_publishable_key(app)
    stored: bytes | None = await redis.get(name)
    if stored is not None:
        if await registry.resolve(digest(stored.decode())) is not None:
            return stored.decode()
        await redis.delete(name)
    info, key = await registry.add_key(app, "publishable")
    if await redis.set(name, key, nx=True):
        return key
    # Another gateway made one at the same moment: use theirs, drop ours.
    await registry.revoke(app, info.key_id)
    winner: bytes | None = await redis.get(name)
    return winner.decode() if winner is not None else None


async def ensure_demo_app(registry: AppRegistry, app: str, origins: Sequence[str]) -> None:
    """The demo app exists and its page's origins may use its publishable key."""
    current = await registry.get(app)
    if current is None:
        await registry.create_app("Demo store", Policy(allowed_origins=tuple(origins)), app_id=app)
        return
    allowed = tuple(dict.fromkeys((*current.policy.allowed_origins, *origins)))
    if allowed != current.policy.allowed_origins:
        policy = msgspec.structs.replace(current.policy, allowed_origins=allowed)
        await registry.set_policy(app, policy)


def prepare_demo(settings: Settings, app: str, *, origins: Sequence[str], asset_root: str) -> None:
    """What `tryon-gateway dev` does before starting the gateway: the demo app (its page served
    by the gateway at `origins`) and its catalog."""

    async def prepare() -> None:
        redis = connect_redis(settings)
        try:
            keys = Keys(settings.redis.prefix)
            await ensure_demo_app(AppRegistry(redis, keys), app, origins)
            await upsert_demo_catalog(Catalog(redis, keys), app, asset_root)
        finally:
            await redis.aclose()

    asyncio.run(prepare())
