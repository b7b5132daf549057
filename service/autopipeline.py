"""Auto-pipelined Redis commands for the gateway's request path (the ioredis model).

Every command issued during one event-loop tick is written to ONE connection in ONE socket
write at the end of the tick, and replies are matched to callers in order. Under load, the
requests in flight share round trips and writes instead of each borrowing a pooled connection:
redis-py spends ~70 µs of CPU per command here (pool, locks, a task per `wait_for`), this ~10.

Timeouts are kept, per batch rather than per command: each write records its deadline and a
single watchdog timer checks the oldest unanswered batch. A pipelined connection cannot drop
one late reply and carry on (the replies behind it would be misattributed), so an overdue batch
fails the connection: every unanswered command gets `redis.exceptions.TimeoutError`, and the
next command reconnects. Errors are redis-py's own classes, so callers handle them as before.

Only small commands belong here; large values would hold up everyone behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.redis_conn import DirectTarget, direct_target, master_url, parse_sentinel_url

Arg = bytes | str | int | float


def pack(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP (an array of bulk strings), exactly as redis-py sends it: hiredis'
    C packer (floats as `repr`, bool and None refused with TypeError), a few times faster than
    a Python loop over the arguments (docs/benchmarks.md §3)."""
    # hiredis' stub types the argument as a 1-tuple; any length is fine.
    packed: bytes = hiredis.pack_command(cast(Any, args))
    return packed


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: AutoPipeline) -> None:
        self._owner = owner
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._owner._received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost(self, RedisConnectionError(f"Redis connection lost: {exc or 'closed'}"))


class AutoPipeline:
    def __init__(self, url: str, *, connect_timeout: float, command_timeout: float) -> None:
        self._url = url
        # A plain URL is read (and its TLS context built) once, here: an option the pipeline
        # cannot honour, or a CA file that does not load, stops the gateway at start-up.
        self._direct = None if parse_sentinel_url(url) else direct_target(url)
        self._connect_timeout = connect_timeout
        self._timeout = command_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._reader = hiredis.Reader(replyError=ResponseError)
        # Written but unanswered: one future per command, and per write [deadline, unanswered].
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._batches: deque[list[float]] = deque()
        # Issued this tick, written at its end (or once connected).
        self._out: list[bytes] = []
        self._queued: list[asyncio.Future[Any]] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    def execute(self, *args: Arg) -> asyncio.Future[Any]:
        """Queue a command; the future resolves with its reply (hiredis types: bytes, int,
        list, None) or raises redis-py's ResponseError / TimeoutError / ConnectionError.

        Commands are sent in the order issued, so one caller's writes and reads stay ordered.
        """
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RedisConnectionError("the auto-pipeline is closed")
        fut: asyncio.Future[Any] = loop.create_future()
        self._out.append(pack(args))
        self._queued.append(fut)
        if self._proto is None:
            if self._connecting is None:
                self._connecting = loop.create_task(self._connect())
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return fut

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._fail(RedisConnectionError("the auto-pipeline is closed"))

    # --- connection ---------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        proto = _Protocol(self)
        try:
            async with asyncio.timeout(self._connect_timeout):
                t = self._direct or await self._master()
                if t.path is not None:
                    await loop.create_unix_connection(lambda: proto, t.path)
                else:
                    await loop.create_connection(lambda: proto, t.host, t.port, ssl=t.tls)
                # Handshake before anything queued: those commands assume the right database.
                self._proto = proto
                hello: list[asyncio.Future[Any]] = []
                if t.password:
                    creds = [t.username, t.password] if t.username else [t.password]
                    hello.append(self._send_now(proto, ("AUTH", *creds)))
                if t.db:
                    hello.append(self._send_now(proto, ("SELECT", t.db)))
                for fut in hello:
                    await fut
        except BaseException as exc:
            self._proto = None
            if proto.transport is not None:
                proto.transport.close()
            error = exc
            if isinstance(exc, TimeoutError):
                error = RedisTimeoutError("Timeout connecting to Redis")
            elif isinstance(exc, OSError):
                error = RedisConnectionError(f"Error connecting to Redis: {exc}")
            self._fail(error)
            if not isinstance(exc, Exception):
                raise
        else:
            self._flush()
        finally:
            self._connecting = None

    async def _master(self) -> DirectTarget:
        # A Sentinel URL names the master anew on every (re)connect (after a failover).
        return direct_target(await master_url(self._url, sentinel_timeout=self._connect_timeout))

    def _send_now(self, proto: _Protocol, args: tuple[Arg, ...]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._write(proto, [pack(args)], [fut])
        return fut

    # --- writes and replies -------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        proto = self._proto
        if proto is None or not self._out:
            return
        out, futures = self._out, self._queued
        self._out, self._queued = [], []
        self._write(proto, out, futures)

    def _write(
        self, proto: _Protocol, out: list[bytes], futures: list[asyncio.Future[Any]]
    ) -> None:
        assert proto.transport is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        self._waiting.extend(futures)
        self._batches.append([deadline, float(len(futures))])
        proto.transport.write(b"".join(out))
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._check)

    def _received(self, proto: _Protocol, data: bytes) -> None:
        if proto is not self._proto:
            return
        reader = self._reader
        reader.feed(data)
        waiting, batches = self._waiting, self._batches
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream cannot be trusted
                self._drop(RedisConnectionError("unexpected reply from Redis"))
                return
            fut = waiting.popleft()
            head = batches[0]
            head[1] -= 1
            if head[1] <= 0:
                batches.popleft()
            if fut.done():  # the caller was cancelled; its reply is still consumed in order
                continue
            if isinstance(reply, ResponseError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def _check(self) -> None:
        self._watchdog = None
        if not self._batches:
            return
        loop = asyncio.get_running_loop()
        deadline = self._batches[0][0]
        if loop.time() >= deadline:
            self._drop(RedisTimeoutError(f"Redis did not answer within {self._timeout:g} s"))
        else:
            self._watchdog = loop.call_at(deadline, self._check)

    def _lost(self, proto: _Protocol, error: Exception) -> None:
        if proto is self._proto:
            self._drop(error)

    def _drop(self, error: Exception) -> None:
        """Fail everything in flight and forget the connection; the next command reconnects."""
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.abort()
        self._fail(error)

    def _fail(self, error: BaseException) -> None:
        futures = [*self._waiting, *self._queued]
        self._waiting.clear()
        self._batches.clear()
        self._out, self._queued = [], []
        self._reader = hiredis.Reader(replyError=ResponseError)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)


class Script:
    """A Lua script run by EVALSHA, loaded with EVAL when the server does not know it."""

    def __init__(self, pipeline: AutoPipeline, source: str) -> None:
        self._pipeline = pipeline
        self._source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)

    async def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self._pipeline.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self._pipeline.execute("EVAL", self._source, len(keys), *keys, *args)
