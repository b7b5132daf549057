"""The job queue's wire format and enqueue, the one place that knows arq's Redis layout.

arq pickles job arguments by default, so anyone able to write to Redis could run code in a
worker. Jobs here are MessagePack (msgspec) instead, and carry only ids. Enqueueing is a
couple of Redis commands in arq's own layout (a job key and a score in the queue's sorted
set) so the gateway can write a try-on record and its job in one atomic script; arq's
workers read them unchanged. Swapping arq means changing this module and `workers/`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.asyncio import Redis

RUN_TRYON = "run_tryon"
UPLOAD_PHOTO = "upload_photo"
DELIVER = "deliver_webhook"
# arq drops a job that has not started this long after its score.
JOB_EXPIRY_MS = 86_400_000

_encoder = msgspec.msgpack.Encoder(enc_hook=repr)
_decoder = msgspec.msgpack.Decoder()


def serialize(data: dict[str, Any]) -> bytes:
    """arq's `job_serializer`. Results holding exceptions are kept as their repr."""
    return _encoder.encode(data)


def deserialize(raw: bytes) -> dict[str, Any]:
    """arq's `job_deserializer`: plain data only, never objects."""
    data: dict[str, Any] = _decoder.decode(raw)
    return data


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def result_key(job_id: str) -> str:
    return result_key_prefix + job_id


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id


def encode_job(function: str, *args: Any, job_try: int | None = None) -> tuple[bytes, int]:
    """The bytes arq expects under the job key, and the enqueue time (ms) to score it with."""
    now_ms = int(time.time() * 1000)
    payload: dict[str, Any] = {"t": job_try, "f": function, "a": list(args), "k": {}, "et": now_ms}
    return serialize(payload), now_ms


def tryon_job_id(tryon_id: str) -> str:
    return f"tryon:{tryon_id}"


def photo_job_id(image_id: str) -> str:
    return f"photo:{image_id}"


_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""


class JobQueue:
    """Enqueue by job id, once: a job already queued or running under that id is left alone."""

    def __init__(self, redis: Redis, queue_name: str) -> None:
        self.name = queue_name
        self._enqueue = redis.register_script(_ENQUEUE)

    async def enqueue(self, function: str, *args: Any, job_id: str, defer: float = 0.0) -> bool:
        job, now_ms = encode_job(function, *args)
        done = await self._enqueue(
            keys=[job_key(job_id), self.name, in_progress_key(job_id), result_key(job_id)],
            args=[job, JOB_EXPIRY_MS, now_ms + int(defer * 1000), job_id],
        )
        return bool(done)
