"""arq's queue as ops see it: counts read with O(log n) commands plus one pipeline of EXISTS
over at most `SCAN_CAP` ready jobs (arq keeps a running job in its queue until it ends; the
job's in-progress key tells the two apart). The layout is arq's; service/jobs.py owns it."""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from service import jobs

# At most this many ready jobs are checked for an in-progress key per snapshot: bounded cost
# whatever the backlog; beyond it the in-progress count is a lower bound (`inProgressExact`).
SCAN_CAP = 1000


class QueueCounts(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: str
    ready: int
    deferred: int
    in_progress: int
    # False when more than SCAN_CAP jobs were due: in_progress is then a lower bound and ready
    # an upper bound.
    in_progress_exact: bool
    oldest_ready_age_seconds: float | None


class ReadyJob(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    job_id: str
    function: str | None
    args: list[object]
    enqueued_at: float
    age_seconds: float


class QueueView:
    """Reads arq's layout without KEYS or SCAN."""

    def __init__(self, redis: Redis, queue_name: str) -> None:
        self._redis = redis
        self.name = queue_name

    async def _due(self, now_ms: int) -> tuple[int, int, list[tuple[str, float, bool]]]:
        """(due count, deferred count, [(job id, score ms, in progress)] for the first SCAN_CAP
        due jobs, oldest first)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self.name, "-inf", now_ms)
            pipe.zcount(self.name, f"({now_ms}", "+inf")
            pipe.zrangebyscore(self.name, "-inf", now_ms, start=0, num=SCAN_CAP, withscores=True)
            due, deferred, first = await pipe.execute()
        members: list[tuple[bytes, float]] = first
        if not members:
            return int(due), int(deferred), []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id, _ in members:
                pipe.exists(jobs.in_progress_key(job_id.decode()))
            running: list[int] = await pipe.execute()
        listed = [
            (job_id.decode(), score, bool(r))
            for (job_id, score), r in zip(members, running, strict=True)
        ]
        return int(due), int(deferred), listed

    async def counts(self, now: float | None = None) -> QueueCounts:
        now = time.time() if now is None else now
        due, deferred, listed = await self._due(int(now * 1000))
        in_progress = sum(1 for *_, running in listed if running)
        oldest = next((score for _, score, running in listed if not running), None)
        return QueueCounts(
            name=self.name,
            ready=due - in_progress,
            deferred=deferred,
            in_progress=in_progress,
            in_progress_exact=due <= SCAN_CAP,
            oldest_ready_age_seconds=None if oldest is None else max(0.0, now - oldest / 1000),
        )

    async def oldest_ready(self, limit: int = 10, now: float | None = None) -> list[ReadyJob]:
        """The oldest jobs waiting for a worker (not running), with their function and args."""
        now = time.time() if now is None else now
        _, _, listed = await self._due(int(now * 1000))
        waiting = [(job_id, score) for job_id, score, running in listed if not running][:limit]
        if not waiting:
            return []
        raws: list[bytes | None] = await self._redis.mget(
            [jobs.job_key(job_id) for job_id, _ in waiting]
        )
        out = []
        for (job_id, score), raw in zip(waiting, raws, strict=True):
            function: str | None = None
            args: list[object] = []
            if raw is not None:  # arq dropped an expired job's key; its id stays queued
                try:
                    data = jobs.deserialize(raw)
                    function, args = data.get("f"), list(data.get("a") or [])
                except (msgspec.DecodeError, TypeError, ValueError):
                    function = "<unreadable>"
            out.append(
                ReadyJob(
                    job_id=job_id,
                    function=function,
                    args=args,
                    enqueued_at=score / 1000,
                    age_seconds=max(0.0, now - score / 1000),
                )
            )
        return out
