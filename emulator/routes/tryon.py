"""POST /try-on, POST /try-on/sync and GET /generations/{id}."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from genlook_wire import normalize
from genlook_wire.normalize import PersonSource, ProductInput, TryOnInput
from litestar import Request, Response, get, post

from emulator import catalog, ids
from emulator.body import read_payload
from emulator.deps import AccountDep, RuntimeDep, base_url, path_id
from emulator.errors import ApiError, forbidden, product_not_found
from emulator.fetch import FetchError
from emulator.images import Kind, process_upload
from emulator.models import TERMINAL, Account, Generation, Product
from emulator.runtime import Runtime
from emulator.views import GenerationView, generation_view

SYNC_HOLD = 90.0


async def _person(
    runtime: Runtime, account: Account, source: PersonSource, files: dict[str, bytes]
) -> tuple[bytes, Kind]:
    if source.kind == "id":
        image = runtime.store.image(source.value, runtime.clock.seconds())
        if image is None:
            raise ApiError(
                404,
                "IMAGE_NOT_FOUND",
                f"Image '{source.value}' not found or expired; upload again.",
            )
        if image.owner != account.api_key:
            raise forbidden("image")
        return image.data, image.kind
    if source.kind == "url":
        try:
            data = await runtime.fetcher.fetch(source.value)
        except FetchError as exc:
            raise ApiError(400, "CUSTOMER_IMAGE_FETCH_FAILED", str(exc)) from None
    else:
        data = files[source.value]
    return process_upload(data, crop=False)


def _product(
    runtime: Runtime, account: Account, item: ProductInput, files: dict[str, bytes], now: float
) -> Product:
    store, owner = runtime.store, account.api_key
    if item.external_id is None:
        if item.is_reference:
            raise catalog.images_required()
        return catalog.prepare(
            store,
            owner=owner,
            external_id=ids.anon_product_id(),
            patch=item,
            files=files,
            now=now,
            origin="one-shot",
        )
    if item.is_reference:
        found = store.product(owner, item.external_id, now)
        if found is not None:
            return found
        if store.product_elsewhere(owner, item.external_id, now):
            raise forbidden("product")
        raise product_not_found(item.external_id)
    return catalog.prepare(
        store,
        owner=owner,
        external_id=item.external_id,
        patch=item,
        files=files,
        now=now,
        origin="inline",
    )


async def _create(
    request: Request[Any, Any, Any], runtime: Runtime, account: Account
) -> Generation:
    body, files = await read_payload(request)
    req: TryOnInput = normalize.try_on(body)
    catalog.check_files(req.file_keys, files)
    person, kind = await _person(runtime, account, req.person, files)
    # Nothing below awaits: the checks and the writes happen as one step.
    now = runtime.clock.seconds()
    product = _product(runtime, account, req.product, files, now)
    mock = product.title == "mock"
    if not mock and account.credits < 1:
        raise ApiError(402, "INSUFFICIENT_CREDITS", "Not enough credits; top up in the dashboard.")
    product.touch(now)
    catalog.commit(runtime.store, product)
    pending_for, duration = runtime.engine.draw_timing(mock)
    gen = Generation(
        id=ids.generation_id(),
        owner=account.api_key,
        product=product.snapshot(),
        person=person,
        person_kind=kind,
        external_user_id=req.external_user_id,
        watermark=req.watermark,
        ai_label=req.ai_label,
        keep_for_days=req.keep_for_days or account.retention_default_days,
        mock=mock,
        charged=not mock,
        created_at=now,
        pending_for=pending_for,
        duration=duration,
    )
    gen.transition("PENDING", now)
    if gen.charged:
        account.credits -= 1
        runtime.counters.credits_spent += 1
    runtime.counters.generations_created += 1
    if req.product.is_reference:
        runtime.counters.product_references += 1
    else:
        runtime.counters.product_inline_upserts += 1
    runtime.store.generations[gen.id] = gen
    runtime.engine.start(gen)
    return gen


@post("/try-on", opt={"endpoint": "create_try_on"}, status_code=200)
async def create_try_on(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    account: AccountDep,
) -> dict[str, str]:
    gen = await _create(request, runtime, account)
    return {
        "generationId": gen.id,
        "status": gen.status,
        "productExternalId": gen.product.external_id,
    }


@post("/try-on/sync", opt={"endpoint": "create_try_on_sync"})
async def create_try_on_sync(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    account: AccountDep,
) -> Response[GenerationView]:
    gen = await _create(request, runtime, account)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gen.done.wait(), timeout=runtime.clock.to_real(SYNC_HOLD))
    view = generation_view(gen, runtime, base_url(request), with_product=True)
    return Response(view, status_code=200 if gen.status in TERMINAL else 202)


@get("/generations/{generation_id:path}", opt={"endpoint": "get_generation"})
async def get_generation(
    request: Request[Any, Any, Any],
    generation_id: str,
    runtime: RuntimeDep,
    account: AccountDep,
) -> GenerationView:
    gen_id = path_id(generation_id)
    gen = runtime.store.generations.get(gen_id)
    if gen is None:
        raise ApiError(404, "GENERATION_NOT_FOUND", f"Generation '{gen_id}' not found.")
    if gen.owner != account.api_key:
        raise forbidden("generation")
    return generation_view(gen, runtime, base_url(request))
