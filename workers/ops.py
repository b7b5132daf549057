"""The worker's side of ops: a heartbeat and the processing-pause watcher, one asyncio task.

Every second the task reads the processing flag and sets arq's `Worker.allow_pick_jobs`
accordingly (jobs in flight finish; no new one starts). Every `WORKER_HEALTH_CHECK_INTERVAL`
seconds, and at once when picking changes, it writes the worker's heartbeat.

arq itself sets `allow_pick_jobs = False` when SIGTERM asks it to finish its jobs and stop; the
watcher must never turn picking back on then, so it only re-enables what it disabled, and never
once the worker is stopping (`OpsWorker` records that).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import socket
import time
from signal import Signals
from typing import Any, Protocol

from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError
from service.keys import Keys
from service.ops.heartbeats import Heartbeats, WorkerBeat
from service.ops.pauses import Pauses

log = logging.getLogger("workers.ops")

POLL_INTERVAL = 1.0


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _version() -> str:
    try:
        return importlib.metadata.version("tryon-gateway")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class OpsWorker(Worker):
    """arq's Worker, noting when it begins to stop so the pause watcher leaves picking off."""

    stopping = False

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        self.stopping = True
        super().handle_sig_wait_for_completion(signum)

    def handle_sig(self, signum: Signals) -> None:
        self.stopping = True
        super().handle_sig(signum)


class PickableWorker(Protocol):
    """What the watcher uses of arq's Worker."""

    allow_pick_jobs: bool
    queue_name: str
    job_tasks: dict[str, Any]
    jobs_complete: int
    jobs_failed: int
    jobs_retried: int


class WorkerOps:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        worker: PickableWorker,
        *,
        beat_interval: float,
        poll_interval: float = POLL_INTERVAL,
        name: str | None = None,
    ) -> None:
        self._pauses = Pauses(redis, keys)
        self._beats = Heartbeats(redis, keys)
        self._worker = worker
        self._beat_interval = beat_interval
        self._poll_interval = poll_interval
        self.id = name or worker_id()
        self._started = time.time()
        self._version = _version()
        self._paused_by_us = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ops-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._beats.gone(self.id)

    def _stopping(self) -> bool:
        return bool(getattr(self._worker, "stopping", False))

    async def apply_pause(self) -> bool:
        """Read the processing flag and set picking; True if picking changed."""
        paused = await self._pauses.get("processing") is not None
        w = self._worker
        if paused and w.allow_pick_jobs:
            w.allow_pick_jobs = False
            self._paused_by_us = True
            log.warning("processing paused: taking no new job (%d in flight)", len(w.job_tasks))
            return True
        if not paused and self._paused_by_us and not self._stopping():
            w.allow_pick_jobs = True
            self._paused_by_us = False
            log.warning("processing resumed")
            return True
        return False

    async def beat(self) -> None:
        w = self._worker
        host, _, pid = self.id.rpartition("-")
        await self._beats.beat(
            WorkerBeat(
                id=self.id,
                host=host,
                pid=int(pid) if pid.isdigit() else os.getpid(),
                version=self._version,
                queue=w.queue_name,
                started_at=self._started,
                beat_at=time.time(),
                jobs_in_progress=len(w.job_tasks),
                jobs_complete=w.jobs_complete,
                jobs_failed=w.jobs_failed,
                jobs_retried=w.jobs_retried,
                picking=bool(w.allow_pick_jobs),
            ),
            self._beat_interval,
        )

    async def _run(self) -> None:
        next_beat = 0.0
        while True:
            try:
                changed = await self.apply_pause()
                now = time.monotonic()
                if changed or now >= next_beat:
                    await self.beat()
                    next_beat = now + self._beat_interval
            except (RedisError, OSError) as exc:
                # Redis comes back (arq restarts on a lost connection anyway); keep trying.
                log.warning("ops heartbeat: Redis unavailable (%s)", type(exc).__name__)
            await asyncio.sleep(self._poll_interval)
