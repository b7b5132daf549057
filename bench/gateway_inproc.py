"""CPU per request on the gateway's hot paths, in process: the ASGI app called directly.

No HTTP server and no load generator: `POST /v1/try-ons` and `GET /v1/try-ons/{id}` are sent
to the ASGI callable (the gateway as `tryon-gateway serve` runs it, access log included, and
`bench/bare_app.py`), `--concurrency` callers at a time on uvloop, and the process's CPU time
is divided by the number of requests. Redis does its work in its own process, so the figure is
the Python-side cost that limits req/s; it is far less sensitive to other load on the machine
than a wall-clock rate. Ours and bare alternate `--rounds` times; the median is printed.

    uv run python -m bench.gateway_inproc [--requests 10000] [--rounds 3] [--profile post|get]

`--instructions` counts instead: each of the four (route, server) pairs runs in its own process
under valgrind's callgrind with instrumentation switched on (`callgrind_control`) only around
`--requests` sequential requests, after a warm-up and `gc.freeze()` (a full collection of the
start-up heap would otherwise land in one run and not another). Instructions per request do
not depend on what else the machine runs; ~15 s per pair. Needs valgrind (Debian package).

    uv run python -m bench.gateway_inproc --instructions [--requests 600]

Redis database 12 (`BENCH_REDIS_URL`), flushed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import httpx
import uvloop
from litestar.types import ASGIApp, Message

from bench import bare_app
from bench._common import APP, BENCH_REDIS_URL, SECRET, flush_redis, photo_bytes, tryon_body

Request = Callable[[], Awaitable[int]]


def _caller(
    app: ASGIApp,
    method: str,
    path: str,
    body: bytes,
    key_header: tuple[bytes, bytes] = (b"authorization", f"Bearer {SECRET}".encode()),
) -> Request:
    headers = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), key_header]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    template = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }
    request_message: Message = {"type": "http.request", "body": body, "more_body": False}

    async def call() -> int:
        status = 0

        async def receive() -> Message:
            return request_message

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(template), receive, send)  # type: ignore[arg-type]
        return status

    return call


async def _measure(call: Request, requests: int, concurrency: int) -> list[float]:
    """CPU microseconds per request with `concurrency` callers in flight, for each batch of
    `concurrency` x 16 requests: other load on the machine only ever adds, so the smallest
    batches are the cost itself."""
    per_caller = 16
    bad = 0

    async def caller() -> None:
        nonlocal bad
        for _ in range(per_caller):
            if (await call()) >= 300:
                bad += 1

    batches = []
    for _ in range(max(1, requests // (per_caller * concurrency))):
        cpu0 = time.process_time()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        batches.append(1e6 * (time.process_time() - cpu0) / (per_caller * concurrency))
    if bad:
        raise RuntimeError(f"{bad} requests answered >= 300")
    return batches


async def measure_all(
    calls: dict[tuple[str, str], Request], args: argparse.Namespace
) -> dict[tuple[str, str], list[float]]:
    """Each call's batches (`_measure`) after a warm-up, the calls alternating `args.rounds`
    times so that other load on the machine falls on all of them alike."""
    for call in calls.values():  # warm-up: caches, the pipeline's connection
        await _measure(call, 2000, args.concurrency)
    results: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
    for _ in range(args.rounds):
        for key, call in calls.items():
            results[key] += await _measure(call, args.requests, args.concurrency)
    return results


class Lifespan:
    """The app's ASGI lifespan, driven on this event loop (Litestar's test clients run it in a
    thread of their own, and the auto-pipeline must live on the loop that uses it)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(
            self._app(scope, self._inbox.get, self._outbox.put)  # type: ignore[arg-type]
        )
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan: {message}")

    async def __aexit__(self, *exc: object) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        assert self._task is not None
        await self._task


async def _prepare(app: ASGIApp) -> tuple[bytes, str]:
    """A product, a photo and one accepted try-on; the POST body and the try-on's id."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://127.0.0.1:8080",
        headers={"Authorization": f"Bearer {SECRET}"},
    ) as client:
        photo = {"file": ("p.jpg", photo_bytes(), "image/jpeg")}
        r = await client.post("/v1/images", files=photo)
        r.raise_for_status()
        image = {"source": {"url": "https://example.com/t.png"}}
        r2 = await client.put("/v1/products/tee", json={"title": "Red tee", "images": [image]})
        r2.raise_for_status()
        body = json.dumps(tryon_body(r.json()["id"], "tee"), separators=(",", ":")).encode()
        json_type = {"content-type": "application/json"}
        r = await client.post("/v1/try-ons", content=body, headers=json_type)
        r.raise_for_status()
    return body, str(r.json()["id"])


def _quiet_logs() -> None:
    """Access lines to /dev/null: the write stays (one batched write), the terminal does not."""
    from service import logs

    if logs._writer is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        logs._writer._fd = devnull


async def main(args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.settings import Settings

    os.environ.setdefault("REDIS_URL", BENCH_REDIS_URL)
    settings = Settings.from_env(
        {**os.environ, "REDIS_URL": BENCH_REDIS_URL, "GATEWAY_SECRET_KEYS": f"{SECRET}={APP}"}
    )
    flush_redis()
    ours = create_app(settings)  # with its edge layer and access log, as `serve` runs it
    bare = bare_app.create_app()
    try:
        async with Lifespan(ours):
            _quiet_logs()
            body, tryon_id = await _prepare(ours)
            calls = {
                ("POST", "ours"): _caller(ours, "POST", "/v1/try-ons/", body),
                ("GET", "ours"): _caller(ours, "GET", f"/v1/try-ons/{tryon_id}", b""),
                ("POST", "bare"): _caller(bare, "POST", "/v1/try-ons", body),
                ("GET", "bare"): _caller(bare, "GET", f"/v1/try-ons/{tryon_id}", b""),
            }
            if args.profile:
                await _profile(calls[(args.profile.upper(), "ours")], args)
                return
            if args.callgrind_child:
                method, server = args.callgrind_child.split(",")
                await _count_instructions(calls[(method, server)], args.requests)
                return
            _report(await measure_all(calls, args), args)
    finally:
        flush_redis()


async def _count_instructions(call: Request, requests: int) -> None:
    """Under callgrind (see `instructions`): count only the measured requests."""

    def callgrind(*command: str) -> None:
        subprocess.run(["callgrind_control", *command, str(os.getpid())], check=True,
                       capture_output=True, timeout=60)  # fmt: skip

    for _ in range(64):
        await call()
    gc.collect()
    gc.freeze()
    callgrind("-i", "on")
    for _ in range(requests):
        await call()
    callgrind("-i", "off")
    print(f"requests={requests}")


def instructions(args: argparse.Namespace) -> None:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tryon-callgrind-") as tmp:
        for method in ("POST", "GET"):
            for server in ("ours", "bare"):
                out = subprocess.run(
                    ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                     f"--callgrind-out-file={tmp}/cg.%p", sys.executable, "-m",
                     "bench.gateway_inproc", "--callgrind-child", f"{method},{server}",
                     "--requests", str(args.requests)],
                    capture_output=True, text=True, timeout=900, check=True,
                )  # fmt: skip
                collected = re.search(r"Collected : (\d+)", out.stderr)
                measured = re.search(r"requests=(\d+)", out.stdout)
                if not collected or not measured:
                    raise RuntimeError(f"callgrind run failed: {out.stderr[-500:]}")
                rows[(method, server)] = int(collected.group(1)) / int(measured.group(1))
    print(f"instructions per request (callgrind), {args.requests} sequential requests per pair")
    for method in ("POST", "GET"):
        ours, bare = rows[(method, "ours")], rows[(method, "bare")]
        print(
            f"{method:<4} ours {ours / 1000:7.1f}k  bare {bare / 1000:6.1f}k  "
            f"bare/ours {bare / ours:.1%}"
        )


async def _profile(call: Request, args: argparse.Namespace) -> None:
    await _measure(call, 2000, args.concurrency)
    prof = cProfile.Profile()
    prof.enable()
    await _measure(call, args.requests, args.concurrency)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    # Self time by file: which layer the time is spent in (profiler overhead included).
    by_file: dict[str, float] = {}
    for (path, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = path.split("site-packages/")[-1] if "site-packages/" in path else path
        by_file[key] = by_file.get(key, 0.0) + tottime
    print("self time by file, us/request (profiled):")
    for path, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{1e6 * seconds / args.requests:8.2f}  {path}")


def _report(results: dict[tuple[str, str], list[float]], args: argparse.Namespace) -> None:
    print(
        f"CPU us/request, in process (uvloop), {args.rounds} rounds of {args.requests} requests, "
        f"{args.concurrency} in flight, per batch of {16 * args.concurrency}: 10th percentile "
        "(median)"
    )
    for method in ("POST", "GET"):
        ours, bare = results[(method, "ours")], results[(method, "bare")]
        o, b = _low(ours), _low(bare)
        print(
            f"{method:<4} ours {o:6.1f} ({statistics.median(ours):6.1f})  "
            f"bare {b:5.1f} ({statistics.median(bare):5.1f})  extra {o - b:6.1f}  "
            f"bare/ours {b / o:.1%}"
        )


def _low(batches: list[float]) -> float:
    return sorted(batches)[len(batches) // 10]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--profile", choices=["post", "get"], help="cProfile ours instead")
    p.add_argument("--sort", default="tottime", help="pstats sort key for --profile")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--instructions", action="store_true", help="count instructions (valgrind)")
    p.add_argument("--callgrind-child", help=argparse.SUPPRESS)
    parsed = p.parse_args()
    if parsed.instructions:
        instructions(parsed)
    else:
        uvloop.run(main(parsed))
