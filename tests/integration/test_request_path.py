"""The request path's cheaper pieces keep their contract: RESP bytes as redis-py writes them,
the access line with every field (valid JSON whatever the path), try-on ids of the same form, the
hot routes' parameters and answers as before and as documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis._parsers import Encoder
from redis.connection import PythonRespSerializer
from service import logs
from service.api.edge import edge
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


def _no_ring() -> Any:
    raise AssertionError("no Origin header was sent: the origins are not looked up")


async def test_access_line_has_every_field_and_survives_any_path() -> None:
    read_fd, write_fd = os.pipe()
    previous = logs._writer
    logs._writer = logs.LineWriter(write_fd, interval=3600)

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        logs.app_id.set('shop "a"')
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = edge(inner, ring=_no_ring, access_log=True)
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


async def test_hot_route_parameters_are_checked_and_documented(
    client: AsyncTestClient[Any],
) -> None:
    tryon = {
        "products": [
            {"title": "Tee", "images": [{"source": {"url": "https://example.com/t.png"}}]}
        ],
        "person": {"image": {"source": {"url": "https://example.com/p.jpg"}}},
    }
    first = await client.post("/v1/try-ons", json=tryon, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202, first.text
    assert first.headers["content-type"] == "application/json"
    assert first.headers["location"] == f"/v1/try-ons/{first.json()['id']}"
    assert first.json()["status"] == "queued"
    again = await client.post("/v1/try-ons", json=tryon, headers={"Idempotency-Key": "k1"})
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    too_long = await client.post("/v1/try-ons", json=tryon, headers={"Idempotency-Key": "k" * 256})
    assert (too_long.status_code, too_long.json()["code"]) == (400, "VALIDATION_FAILED")

    tryon_id = first.json()["id"]
    for wait in ("abc", "-1", "61", "nan", "inf"):
        r = await client.get(f"/v1/try-ons/{tryon_id}", params={"wait": wait})
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_FAILED"), wait
        assert r.json()["details"][0]["path"] == "wait"
    started = time.monotonic()
    r = await client.get(f"/v1/try-ons/{tryon_id}", params={"wait": "0.3"})
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.3  # queued, no worker: it waited
    r = await client.get(f"/v1/try-ons/{tryon_id}")
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    assert r.json() == first.json()

    paths = (await client.get("/docs/openapi.json")).json()["paths"]
    create_params = {p["name"]: p for p in paths["/v1/try-ons"]["post"]["parameters"]}
    assert create_params["Idempotency-Key"]["in"] == "header"
    assert create_params["Idempotency-Key"]["schema"]["maxLength"] == 255
    out_schema = {"$ref": "#/components/schemas/TryOnOut"}
    created = paths["/v1/try-ons"]["post"]["responses"]["202"]["content"]["application/json"]
    assert created["schema"] == out_schema
    read = paths["/v1/try-ons/{tryon_id}"]["get"]["responses"]["200"]["content"]
    assert read["application/json"]["schema"] == out_schema
    read_params = {p["name"]: p for p in paths["/v1/try-ons/{tryon_id}"]["get"]["parameters"]}
    assert read_params["wait"]["in"] == "query"
    # The cap is a setting (GATEWAY_MAX_WAIT_SECONDS): described, not a fixed schema maximum.
    assert "GATEWAY_MAX_WAIT_SECONDS" in read_params["wait"]["description"]
    assert "tryon_id" in read_params


@pytest.mark.parametrize(
    ("setting", "threshold", "frozen"), [("12345", 12345, True), ("0", 700, False)]
)
def test_the_served_app_tunes_its_collector(setting: str, threshold: int, frozen: bool) -> None:
    # In a process of its own: what `serve` builds changes the process's collector.
    probe = ("import gc; from service.app import create_asgi; create_asgi(); "
             "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "GATEWAY_GC_THRESHOLD": setting},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.split() == [str(threshold), str(frozen)]


@pytest.mark.parametrize(("cap", "accepted", "refused"), [("90", "61", "91"), ("2", "2", "2.5")])
async def test_the_wait_cap_is_a_setting(redis: Any, cap: str, accepted: str, refused: str) -> None:
    from service.app import create_app
    from service.settings import Settings

    from tests.conftest import TEST_REDIS_URL

    settings = Settings.from_env(
        {"REDIS_URL": TEST_REDIS_URL, "GATEWAY_SECRET_KEYS": "sk_test_wait_cap_0123456789=shop",
         "GATEWAY_MAX_WAIT_SECONDS": cap}
    )  # fmt: skip
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["Authorization"] = "Bearer sk_test_wait_cap_0123456789"
        r = await client.get("/v1/try-ons/to_unknown", params={"wait": accepted})
        assert (r.status_code, r.json()["code"]) == (404, "TRYON_NOT_FOUND"), r.text
        r = await client.get("/v1/try-ons/to_unknown", params={"wait": refused})
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_FAILED"), r.text
        assert f"0 to {cap}" in r.json()["details"][0]["message"]
