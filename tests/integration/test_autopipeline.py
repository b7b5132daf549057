"""The auto-pipeline against a real Redis (database 9), and against servers that misbehave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from service.autopipeline import AutoPipeline, Script, pack

from tests.conftest import TEST_REDIS_URL, free_port


@pytest.fixture
async def ap(redis: Any) -> AsyncIterator[AutoPipeline]:
    pipeline = AutoPipeline(TEST_REDIS_URL, connect_timeout=2.0, command_timeout=2.0)
    yield pipeline
    await pipeline.aclose()


def test_pack_matches_resp() -> None:
    assert pack(("SET", b"k", 1, 2.5)) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$3\r\n2.5\r\n"
    with pytest.raises(TypeError):
        pack(("SET", "k", True))


async def test_commands_see_the_selected_database(ap: AutoPipeline, redis: Any) -> None:
    await redis.hset("h", "doc", b"\x00bytes")
    assert await ap.execute("HGET", "h", "doc") == b"\x00bytes"
    assert await ap.execute("GET", "missing") is None
    assert await ap.execute("SET", "k", "v") == b"OK"
    assert await redis.get("k") == b"v"


async def test_one_tick_is_one_write(ap: AutoPipeline, redis: Any) -> None:
    await ap.execute("PING")  # connected
    writes: list[int] = []
    real = ap._write

    def counting(proto: Any, out: list[bytes], futures: list[Any]) -> None:
        writes.append(len(futures))
        real(proto, out, futures)

    ap._write = counting  # type: ignore[method-assign]
    futures = [ap.execute("SET", f"k{i}", i) for i in range(50)]
    futures += [ap.execute("GET", f"k{i}") for i in range(50)]
    replies = [await f for f in futures]
    assert writes == [100]
    assert replies == [b"OK"] * 50 + [str(i).encode() for i in range(50)]


async def test_errors_reach_their_caller_only(ap: AutoPipeline, redis: Any) -> None:
    await redis.set("s", "x")
    bad = ap.execute("HGET", "s", "f")  # wrong type
    good = ap.execute("GET", "s")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await bad
    assert await good == b"x"


async def test_a_cancelled_caller_does_not_shift_replies(ap: AutoPipeline, redis: Any) -> None:
    await redis.mset({"a": "1", "b": "2"})
    first = ap.execute("GET", "a")
    second = ap.execute("GET", "b")
    first.cancel()
    assert await second == b"2"
    assert await ap.execute("GET", "a") == b"1"


async def test_script_loads_itself_after_a_flush(ap: AutoPipeline, redis: Any) -> None:
    script = Script(ap, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await redis.script_flush()
    assert await script(keys=["n"], args=[2]) == 2
    assert await script(keys=["n"], args=[3]) == 5  # now by EVALSHA
    with pytest.raises(ResponseError):
        await Script(ap, "return redis.call('NOPE')")(keys=[], args=[])


async def _silent_server(handle: Any) -> tuple[asyncio.Server, str]:
    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, f"redis://127.0.0.1:{port}/0"


async def test_an_unanswered_batch_times_out_and_the_next_command_reconnects() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server, url = await _silent_server(never_answer)
    ap = AutoPipeline(url, connect_timeout=1.0, command_timeout=0.2)
    try:
        started = time.monotonic()
        futures = [ap.execute("GET", "a"), ap.execute("GET", "b")]
        for fut in futures:
            with pytest.raises(RedisTimeoutError):
                await fut
        assert 0.15 < time.monotonic() - started < 1.0
        with pytest.raises(RedisTimeoutError):
            await ap.execute("GET", "c")
        assert len(connections) == 2
    finally:
        await ap.aclose()
        server.close()
        await server.wait_closed()


async def test_a_dropped_connection_fails_what_is_in_flight() -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server, url = await _silent_server(hang_up)
    ap = AutoPipeline(url, connect_timeout=1.0, command_timeout=5.0)
    try:
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(ap.execute("GET", "a"), timeout=2.0)
    finally:
        await ap.aclose()
        server.close()
        await server.wait_closed()


async def test_refused_connection_is_a_connection_error() -> None:
    ap = AutoPipeline(
        f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1.0, command_timeout=1.0
    )
    with pytest.raises(RedisConnectionError):
        await ap.execute("PING")
    await ap.aclose()
    with pytest.raises(RedisConnectionError):
        ap.execute("PING")


async def test_works_on_uvloop(redis: Any) -> None:
    import uvloop

    async def roundtrip() -> Any:
        ap = AutoPipeline(TEST_REDIS_URL, connect_timeout=2.0, command_timeout=2.0)
        try:
            return await ap.execute("ECHO", "hi")
        finally:
            await ap.aclose()

    loop = uvloop.new_event_loop()
    try:
        # pytest-asyncio's loop is the stdlib one; the gateway runs on uvloop.
        result = await asyncio.to_thread(loop.run_until_complete, roundtrip())
    finally:
        loop.close()
    assert result == b"hi"
