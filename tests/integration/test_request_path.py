"""The request path's cheaper pieces keep their contract: RESP bytes as redis-py writes them,
the access line with every field (valid JSON whatever the path), try-on ids of the same form."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from redis._parsers import Encoder
from redis.connection import PythonRespSerializer
from service import logs
from service.api.request_log import request_log
from service.autopipeline import pack
from service.tryons.intake import new_tryon_id


def test_pack_is_what_redis_py_sends() -> None:
    args = ("EVALSHA", "abc", 2, b"k\x00", "é", 0.1, 1763700000.123456, -7, 1e20, 2**62)
    redis_py = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
    expected = b"".join(redis_py.pack(*args))
    assert pack(args) == expected
    for bad in (True, None, object()):
        with pytest.raises(TypeError):
            pack(("SET", "k", bad))  # type: ignore[arg-type]


def test_tryon_ids_are_random_and_url_safe() -> None:
    ids = {new_tryon_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(re.fullmatch(r"to_[A-Za-z0-9_-]{20}", i) for i in ids)


async def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await app(scope, receive, send)
    return sent


async def test_access_line_has_every_field_and_survives_any_path() -> None:
    read_fd, write_fd = os.pipe()
    previous = logs._writer
    logs._writer = logs.LineWriter(write_fd, interval=3600)

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        logs.app_id.set('shop "a"')
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = request_log(inner)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        sent = await _call(
            app,
            '/v1/"quoted"\n\x01é',
            [
                (b"x-request-id", b"req-1"),
                (b"traceparent", f"00-{trace}-00f067aa0ba902b7-01".encode()),
            ],
        )
        generated = await _call(app, "/healthz", [])
        logs._writer.flush()
        lines = os.read(read_fd, 65536).decode().splitlines()
    finally:
        logs._writer = previous
        os.close(read_fd)
        os.close(write_fd)
    assert dict(sent[0]["headers"])[b"x-request-id"] == b"req-1"
    first, second = (json.loads(line) for line in lines)
    assert list(first) == ["ts", "level", "logger", "msg", "requestId", "traceId", "app",
                           "method", "route", "status", "ms"]  # fmt: skip
    assert (first["requestId"], first["traceId"]) == ("req-1", trace)
    assert (first["route"], first["app"]) == ('/v1/"quoted"\n\x01é', 'shop "a"')
    assert (first["level"], first["logger"], first["msg"]) == ("info", "service.request", "request")
    assert first["status"] == 418
    assert first["ms"] >= 0
    assert re.fullmatch(r"\d+(\.\d{1,3})?", str(first["ts"]))
    # Without ids from the caller: generated ones, 16 and 32 hex digits, echoed back.
    rid = dict(generated[0]["headers"])[b"x-request-id"].decode()
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    assert second["requestId"] == rid
    assert re.fullmatch(r"[0-9a-f]{32}", second["traceId"])
