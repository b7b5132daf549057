"""The arq job functions: thin adapters from arq's calling convention to the runner.

arq retries only on `Retry` (and shutdown cancellation); anything else is final on the first
try. So transient failures surface here as `RetryLater` and become `Retry` with its delay,
while the try-on's own state in Redis decides everything else.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from arq import Retry
from redis.exceptions import RedisError
from service.accounts.directory import NoAccount, refusal_reason
from service.domain_errors import DomainError
from service.genlook import errors as gl
from service.ops.history import record_sample
from service.photos import PhotoBusy, PhotoGone, PhotoStore
from service.resources import Resources
from service.retrying import backoff

from workers.runner import RetryLater, TryOnRunner, make_uploader
from workers.webhooks import sweep_deliveries

log = logging.getLogger("workers.jobs")


async def run_tryon(ctx: dict[str, Any], tryon_id: str) -> str:
    runner: TryOnRunner = ctx["runner"]
    try:
        return await runner.run(tryon_id, ctx.get("job_try", 1))
    except RetryLater as later:
        log.info("try-on %s: retry in %.2fs (%s)", tryon_id, later.delay, later.reason)
        raise Retry(defer=later.delay) from later
    except Exception as exc:
        # arq makes any other exception final, which would leave the try-on stuck. The record
        # says where to resume, and its deadline bounds how long a persistent fault can loop.
        log.exception("try-on %s: unexpected %s; retrying", tryon_id, type(exc).__name__)
        raise Retry(defer=backoff(ctx.get("job_try", 1))) from exc


class _NoSpareCell(Exception):
    """No spare upstream budget for a photo ahead of its try-on."""


async def upload_photo(ctx: dict[str, Any], image_id: str) -> str:
    """Send a fresh photo upstream ahead of its try-on, so the try-on finds it there: only with
    a spare cell of the budget (service/budget.py). When try-ons are waiting for the budget
    (a sale peak, where most uploaded photos never reach a create in time) it is left to the
    try-on that uses it, which uploads it at its own turn: the budget goes to creates."""
    res: Resources = ctx["res"]
    raw = await res.redis.get(res.keys.image(image_id))
    if raw is None:
        return "gone"
    image = PhotoStore.decode(raw)
    accounts = res.accounts
    try:
        # Where the app's next try-on goes: its pool's first usable account.
        up = await accounts.choose(image.app)
    except NoAccount:
        return "refused"
    await accounts.registry.note_used(image.app, up.id)
    upload = make_uploader(up.client, image)

    async def upload_with_spare_cell(data: bytes) -> str:
        async with up.hooks.spare() as granted:
            if not granted:
                raise _NoSpareCell
            return await upload(data)

    try:
        await res.photos.upstream_id(up.digest, image, upload_with_spare_cell)
    except _NoSpareCell:
        await res.metrics.add("photo_uploads", result="left_to_tryon")
        return "left to its try-on"
    except PhotoGone:
        return "gone"
    except PhotoBusy as exc:
        raise Retry(defer=0.5) from exc
    except (gl.TransportError, gl.RateLimited, gl.ServerError) as exc:
        raise Retry(defer=backoff(ctx.get("job_try", 1))) from exc
    except gl.APIError as exc:
        reason = refusal_reason(exc)
        if reason is not None:
            # The try-on that uses this photo uploads it to the account it goes through.
            await accounts.take_out(up.id, reason)
        # The try-on that uses this photo reports the error to its caller.
        log.info("photo %s refused upstream: %s", image_id, exc.code)
        return "refused"
    return "uploaded"


# Each account's balance is read this often, by one worker of the fleet.
_CREDITS_EVERY = 60


async def refresh_credits(res: Resources) -> None:
    """Read every enabled account's balance once a minute, fleet-wide (one budget cell each):
    /metrics' credit balance gauge (the default account's), an account out of its pools for
    want of credits comes back once it has some (service/accounts/directory.py), and its
    balance alerts are checked (service/usage/alerts.py)."""
    registry = res.accounts.registry
    pools = await registry.pools()
    for config in await registry.all():
        if (await registry.status(config.id)).disabled:
            continue
        lock = res.keys.balance_refresh_lock(config.id)
        if not await res.redis.set(lock, 1, nx=True, ex=_CREDITS_EVERY):
            continue
        try:
            balance = await res.accounts.refresh_balance(config.id)
        except DomainError as exc:
            # Deleted meanwhile, or a key no master key opens: the sweep goes on regardless.
            log.warning("balance of account %s not read: %s", config.id, exc.code)
            continue
        if balance is None:
            continue
        try:
            await res.alerts.check_balance(config.id, balance, pools=pools)
        except (RedisError, OSError) as exc:
            # Checked again at the next read; the sweep's own work goes on.
            log.warning("balance alerts of account %s not checked: %s", config.id, exc)


async def sweep(ctx: dict[str, Any]) -> int:
    """Give every non-terminal try-on a job: covers jobs arq dropped (expired, out of tries)
    and deadlines passed while no job was running. Returns how many were enqueued."""
    res: Resources = ctx["res"]
    await refresh_credits(res)
    enqueued = await sweep_deliveries(res, ctx["deliverer"])
    swept = await res.results.sweep(time.time())
    if swept:
        log.info("swept %d stored results past their retention", swept)
    for tryon_id in await res.store.active():
        if await res.store.enqueue(tryon_id):
            enqueued += 1
    if enqueued:
        log.warning("sweeper re-enqueued %d try-ons at %.0f", enqueued, time.time())
    try:
        await record_sample(res.redis, res.keys, res.settings.redis.queue_name)
    except (RedisError, OSError) as exc:
        # A missed sample costs the dashboard's charts a point, never the sweep.
        log.warning("ops history sample not recorded: %s", exc)
    try:
        await res.alerts.check_daily_caps()
    except (RedisError, OSError) as exc:
        # Checked again at the next sweep.
        log.warning("daily cap alerts not checked: %s", exc)
    return enqueued
