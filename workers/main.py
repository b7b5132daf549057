"""The worker process: arq configured from our settings, serializing jobs with msgspec."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any

from arq import cron
from arq.worker import Worker, func
from redis.exceptions import RedisError
from service import jobs, logs
from service.redis_client import connect_redis
from service.redis_conn import arq_redis_settings
from service.resources import Resources
from service.settings import Settings

from workers.jobs import run_tryon, sweep, upload_photo
from workers.ops import WorkerOps
from workers.runner import TryOnRunner
from workers.shutdown import CreateGate, GracefulWorker
from workers.waiting import DurationModel
from workers.webhooks import Dispatcher, deliver_webhook, make_deliverer

log = logging.getLogger("workers")

# A job attempt hands its wait over to a fresh attempt this share of arq's job timeout early.
_TIMEOUT_MARGIN = 0.25


def build_runner(res: Resources, gate: CreateGate) -> TryOnRunner:
    """The try-on runner a worker uses (the tests drive the same one in process)."""
    settings = res.settings
    durations = DurationModel(res.redis, res.keys, clock_speed=settings.genlook.clock_speed)
    budget_s = settings.worker.job_timeout * (1 - _TIMEOUT_MARGIN)
    return TryOnRunner(res, durations, budget_s=budget_s, gate=gate)


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    w = settings.worker

    async def startup(ctx: dict[str, Any]) -> None:
        res = Resources.build(settings)
        ctx["res"] = res
        deliverer, http = make_deliverer(res)
        ctx["deliverer"] = deliverer
        ctx["webhook_http"] = http
        # Its own connection: XREADGROUP blocks for up to a second (under the socket timeout).
        blocking = connect_redis(settings)
        ctx["dispatch_redis"] = blocking
        dispatcher = Dispatcher(
            res, deliverer, blocking, name=f"{socket.gethostname()}-{os.getpid()}"
        )
        ctx["dispatcher"] = asyncio.create_task(dispatcher.run(), name="webhook-dispatcher")
        ctx["runner"] = build_runner(res, gate)
        # Heartbeat and processing-pause watcher; `worker` is bound below, before startup runs.
        ops = WorkerOps(res.redis, res.keys, worker, beat_interval=w.health_check_interval)
        ops.start()
        ctx["ops"] = ops

    async def shutdown(ctx: dict[str, Any]) -> None:
        ops: WorkerOps | None = ctx.get("ops")
        if ops is not None:
            await ops.stop()
        task: asyncio.Task[None] | None = ctx.get("dispatcher")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for name in ("webhook_http", "dispatch_redis"):
            if ctx.get(name) is not None:
                await ctx[name].aclose()
        res: Resources | None = ctx.get("res")
        if res is not None:
            await res.aclose()

    sweep_seconds = max(1, int(w.sweep_interval))
    gate = CreateGate()
    worker = GracefulWorker(
        gate=gate,
        functions=[
            func(run_tryon, name=jobs.RUN_TRYON, timeout=w.job_timeout),
            # arq leases every in-progress job for the LONGEST function timeout (+10 s):
            # a longer timeout here would delay recovery of a killed worker's try-ons.
            func(upload_photo, name=jobs.UPLOAD_PHOTO, timeout=w.job_timeout),
            func(deliver_webhook, name=jobs.DELIVER, timeout=w.job_timeout),
        ],
        cron_jobs=[
            cron(
                sweep,
                second=set(range(0, 60, sweep_seconds)),
                run_at_startup=True,
                timeout=w.job_timeout,
            )
        ],
        queue_name=settings.redis.queue_name,
        redis_settings=arq_redis_settings(settings.redis.url),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=w.max_jobs,
        job_timeout=timedelta(seconds=w.job_timeout),
        poll_delay=w.poll_delay,
        # Our own state machine decides when a try-on gives up (deadline), not a try count.
        max_tries=10_000,
        keep_result=60,
        health_check_interval=w.health_check_interval,
        job_completion_wait=w.job_completion_wait,
        job_serializer=jobs.serialize,
        job_deserializer=jobs.deserialize,
        burst=burst,
        log_results=False,
    )
    return worker


def run(settings: Settings | None = None) -> None:
    logs.configure()
    settings = settings or Settings.from_env()
    while True:
        try:
            build_worker(settings).run()
            return
        except (RedisError, OSError) as exc:
            # arq stops on a lost Redis connection; everything it was doing is recorded in
            # Redis and resumes, so start again once Redis answers (a restart, a failover).
            log.warning("worker stopped: Redis unavailable (%s); restarting in 1 s", exc)
            time.sleep(1.0)
