"""Worker heartbeats: `ops:worker:<host>-<pid>` (TTL ~3 beats) and an index of worker ids by
last beat (`ops:workers`), so listing live workers never needs SCAN/KEYS."""

from __future__ import annotations

import math

import msgspec
from redis.asyncio import Redis

from service.keys import Keys

# A heartbeat lives this many beats: one or two lost beats do not make a worker vanish.
BEAT_TTL_BEATS = 3


class WorkerBeat(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    host: str
    pid: int
    version: str
    queue: str
    started_at: float
    beat_at: float
    # arq's own counters: cheap, the worker already keeps them.
    jobs_in_progress: int = 0
    jobs_complete: int = 0
    jobs_failed: int = 0
    jobs_retried: int = 0
    # False while the worker takes no new job (processing paused, or shutting down).
    picking: bool = True


_decode_beat = msgspec.json.Decoder(WorkerBeat).decode


class Heartbeats:
    _encode = msgspec.json.Encoder().encode

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def beat(self, beat: WorkerBeat, interval: float) -> None:
        ttl_ms = math.ceil(interval * BEAT_TTL_BEATS * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.ops_worker(beat.id), self._encode(beat), px=ttl_ms)
            pipe.zadd(self._keys.ops_workers, {beat.id: beat.beat_at})
            # Ids of workers that died without saying so; read paths clean them too.
            pipe.zremrangebyscore(self._keys.ops_workers, "-inf", beat.beat_at - 86_400)
            await pipe.execute()

    async def gone(self, worker_id: str) -> None:
        """A worker stopping cleanly leaves the list at once instead of after its TTL."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._keys.ops_worker(worker_id))
            pipe.zrem(self._keys.ops_workers, worker_id)
            await pipe.execute()

    async def live(self, limit: int = 1000) -> list[WorkerBeat]:
        ids: list[bytes] = await self._redis.zrevrange(self._keys.ops_workers, 0, limit - 1)
        if not ids:
            return []
        raws: list[bytes | None] = await self._redis.mget(
            [self._keys.ops_worker(i.decode()) for i in ids]
        )
        dead = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if dead:
            await self._redis.zrem(self._keys.ops_workers, *dead)
        beats = [_decode_beat(raw) for raw in raws if raw is not None]
        return sorted(beats, key=lambda b: b.id)
