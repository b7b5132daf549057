"""Try-on state changes, fanned out to in-process waiters (long-polls and SSE streams).

Each gateway process holds ONE pattern subscription to every try-on's channel, opened at
start-up, and dispatches messages to local queues. Waiting on a try-on is then a local
registration with no Redis round trip and no subscribe race: register first, read the record,
and any change published after that read is already on its way to the registered queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.keys import Keys

log = logging.getLogger("service.events")

# Put on every queue after the subscription was re-established: messages may have been missed,
# so waiters re-read the record.
RESYNC = b""


class EventHub:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._waiters: dict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def watch(self, tryon_id: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A queue that receives every event of the try-on published from now on."""
        channel = self._keys.tryon_events(tryon_id)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._waiters[channel].add(queue)
        try:
            yield queue
        finally:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                waiters.discard(queue)
                if not waiters:
                    del self._waiters[channel]

    async def _run(self) -> None:
        pattern = self._keys.tryon_events("*")
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                while True:
                    # A bounded wait, not listen(): the connection's socket timeout must not
                    # read a quiet minute as a dead connection.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "psubscribe":
                        if self._ready.is_set():
                            self._broadcast(RESYNC)
                        self._ready.set()
                        backoff = 0.1
                    elif kind == "pmessage":
                        channel = message["channel"].decode()
                        for queue in self._waiters.get(channel, ()):
                            queue.put_nowait(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("event subscription lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _broadcast(self, data: bytes) -> None:
        for waiters in self._waiters.values():
            for queue in waiters:
                queue.put_nowait(data)
