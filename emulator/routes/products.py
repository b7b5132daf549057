"""The product catalog: upsert, list, get, delete."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from genlook_wire import normalize
from genlook_wire.zod import Issues, coerce_form_number
from litestar import Request, delete, get, post

from emulator import catalog
from emulator.body import read_payload
from emulator.deps import AccountDep, RuntimeDep, path_id
from emulator.errors import forbidden, product_not_found
from emulator.models import Account, Product
from emulator.runtime import Runtime
from emulator.views import product_view

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _owned(runtime: Runtime, account: Account, external_id: str) -> Product:
    now = runtime.clock.seconds()
    product = runtime.store.product(account.api_key, external_id, now)
    if product is not None:
        return product
    if runtime.store.product_elsewhere(account.api_key, external_id, now):
        raise forbidden("product")
    raise product_not_found(external_id)


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"p:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, issues: Issues) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix == "p" and seq.isdigit():
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    issues.add(["cursor"], "Invalid cursor")
    return None


@post("/products", opt={"endpoint": "upsert_product"}, status_code=200)
async def upsert_product(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    account: AccountDep,
) -> dict[str, Any]:
    body, files = await read_payload(request)
    patch = normalize.product_upsert(body)
    catalog.check_files(patch.file_keys(), files)
    assert patch.external_id is not None
    now = runtime.clock.seconds()
    product = catalog.prepare(
        runtime.store,
        owner=account.api_key,
        external_id=patch.external_id,
        patch=patch,
        files=files,
        now=now,
        origin="catalog",
    )
    catalog.commit(runtime.store, product)
    return product_view(product, runtime.clock)


@get("/products", opt={"endpoint": "list_products"})
async def list_products(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    account: AccountDep,
) -> dict[str, Any]:
    issues = Issues()
    limit = DEFAULT_LIMIT
    raw_limit = request.query_params.get("limit")
    if raw_limit is not None:
        value = coerce_form_number(raw_limit)
        if math.isnan(value):
            issues.add(["limit"], "Expected number, received nan")
        else:
            limit = issues.integer(value, ["limit"], minimum=1, maximum=MAX_LIMIT) or limit
    after: int | None = None
    raw_cursor = request.query_params.get("cursor")
    if raw_cursor:
        after = _decode_cursor(raw_cursor, issues)
    issues.raise_if_any()

    products = runtime.store.listed_products(account.api_key, runtime.clock.seconds())
    if after is not None:
        products = [p for p in products if p.seq < after]
    page, has_more = products[:limit], len(products) > limit
    return {
        "items": [product_view(p, runtime.clock) for p in page],
        "nextCursor": _encode_cursor(page[-1].seq) if has_more else None,
        "hasMore": has_more,
        "count": len(page),
    }


@get("/products/{external_id:path}", opt={"endpoint": "get_product"})
async def get_product(
    external_id: str,
    runtime: RuntimeDep,
    account: AccountDep,
) -> dict[str, Any]:
    return product_view(_owned(runtime, account, path_id(external_id)), runtime.clock)


@delete("/products/{external_id:path}", opt={"endpoint": "delete_product"}, status_code=204)
async def delete_product(
    external_id: str,
    runtime: RuntimeDep,
    account: AccountDep,
) -> None:
    product = _owned(runtime, account, path_id(external_id))
    del runtime.store.products[(product.owner, product.external_id)]
