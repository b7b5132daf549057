"""What one try-on costs Redis, from accept to its last webhook, and so what one primary carries.

Everything runs against a private `redis-server` (no persistence) started here, so nothing else
is counted: the gateway app in process (Litestar's test client, the same code `serve` runs), a
real arq worker in process (`workers.main.build_worker`: job polling, the runner, the webhook
dispatcher, heartbeats, sweeps), the emulator as a subprocess, and a loopback webhook receiver
registered as the app's endpoint. Each try-on: a fresh photo uploaded (`POST /v1/images`), the
try-on accepted (`POST /v1/try-ons`), run by the worker, its `tryon.completed` delivered.

Measured around the run, from the server itself: `INFO commandstats` (every command, those run
inside Lua scripts included), `INFO stats` (bytes in and out), `INFO cpu` (the server's CPU
seconds) and `used_memory` (what the run leaves behind: records kept for their retention). The
worker polls Redis while idle (arq's queue poll, heartbeats, the dispatcher's blocking read), so
the same duration is then measured with nothing to do, and subtracted for the net figures.

The ceiling: Redis runs commands on one thread, so one primary carries about
1 / (server CPU seconds per try-on) try-ons a second on this machine's core; cross-checked
with `redis-benchmark` (GET/SET/HSET/ZADD, 50 clients, no pipelining) against the commands
per try-on.

    uv run python -m bench.redis_cost [--count 200] [--concurrency 20] [--repeat-photo]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from service.access.models import Policy
from service.access.registry import AppRegistry
from service.app import create_app
from service.devstack import free_port, port_answers, wait_http
from service.keys import Keys
from service.settings import Settings
from workers.main import build_worker

from bench._common import EMULATOR_KEY, machine, photo_bytes, table

APP = "bench"
SPEED = 100.0


@dataclass
class Snapshot:
    commands: dict[str, int]
    net_in: int
    net_out: int
    cpu: float
    memory: int
    at: float


async def snapshot(redis: Redis) -> Snapshot:
    stats = await redis.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    info = await redis.info()
    return Snapshot(
        commands=counts,
        net_in=int(info["total_net_input_bytes"]),
        net_out=int(info["total_net_output_bytes"]),
        cpu=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        memory=int(info["used_memory"]),
        at=time.monotonic(),
    )


def delta(a: Snapshot, b: Snapshot) -> dict[str, int]:
    names = set(a.commands) | set(b.commands)
    return {n: b.commands.get(n, 0) - a.commands.get(n, 0) for n in names}


@contextlib.contextmanager
def process(cmd: list[str]) -> Any:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[str, list[float]]]:
    """A webhook receiver answering 200 at once; yields its URL and the arrival times."""
    arrivals: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                arrivals.append(time.monotonic())
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", arrivals
    finally:
        server.close()


async def run(count: int, concurrency: int, repeat_photo: bool) -> dict[str, Any]:
    redis_port, emulator_port = free_port(), free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ]
        ),  # fmt: skip
        process(
            [
                sys.executable,
                "-m",
                "service.cli",
                "emulator",
                "--port",
                str(emulator_port),
                "--api-key",
                EMULATOR_KEY,
                "--speed",
                str(SPEED),
                # Neither Genlook's limit nor its balance is what is measured here.
                "--rate-limit",
                "1000000",
                "--credits",
                "1000000",
            ]
        ),  # fmt: skip
    ):
        await asyncio.to_thread(wait_port, redis_port)
        root = f"http://127.0.0.1:{emulator_port}"
        wait_http(f"{root}/_emulator/counters")
        settings = Settings.from_env(
            {
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "GENLOOK_API_KEY": EMULATOR_KEY,
                "GENLOOK_BASE_URL": f"{root}/tryon/v1",
                "GENLOOK_CLOCK_SPEED": str(SPEED),
                "GENLOOK_RATE_WINDOW": str(60.0 / SPEED),
                "GENLOOK_RATE_LIMIT": "100000",
                "WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
                "RESULTS_STORE_URL": f"{tmp}/results",
                "GATEWAY_ACCESS_LOG": "false",
            }
        )
        redis = Redis.from_url(settings.redis.url)
        _, secret, _ = await AppRegistry(redis, Keys()).create_app(APP, Policy(), app_id=APP)
        worker = build_worker(settings)
        worker_task = asyncio.create_task(worker.async_run())
        async with (
            receiver() as (hook_url, arrivals),
            AsyncTestClient(app=create_app(settings)) as gw,
        ):
            gw.headers["Authorization"] = f"Bearer {secret}"
            assert (await gw.post("/v1/webhook-endpoints", json={"url": hook_url})).is_success
            asset = f"{root}/_emulator/assets/red-tee.png"
            product = {"title": "Tee", "images": [{"source": {"url": asset}}]}
            r = await gw.put("/v1/products/tee", json=product)
            assert r.is_success, r.text
            shared_photo = await upload(gw, 0)

            async def one(i: int) -> None:
                # A photo belongs to its user: one shared photo means one user.
                user = 0 if repeat_photo else i
                photo = shared_photo if repeat_photo else await upload(gw, i)
                body = {
                    "products": [{"externalId": "tee"}],
                    "person": {"image": {"source": {"id": photo}}},
                    "externalUserId": f"user-{user}",
                }
                r = await gw.post("/v1/try-ons", json=body)
                assert r.status_code == 202, r.text

            # Warm-up: the product's first upsert and the photo's upload are one-offs.
            await one(0)
            await wait_for(arrivals, 1)
            await asyncio.sleep(1.0)
            before = await snapshot(redis)
            slots = asyncio.Semaphore(concurrency)

            async def limited(i: int) -> None:
                async with slots:
                    await one(i)

            await asyncio.gather(*(limited(i) for i in range(1, count + 1)))
            await wait_for(arrivals, count + 1)
            after = await snapshot(redis)
            # Idle: the same duration with nothing to do.
            await asyncio.sleep(after.at - before.at)
            idle = await snapshot(redis)
        await worker.close()
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        bench = redis_benchmark(redis_port)
        await redis.aclose()
    busy, quiet = delta(before, after), delta(after, idle)
    return {
        "count": count,
        "seconds": after.at - before.at,
        "busy": busy,
        "idle": quiet,
        "net_in": after.net_in - before.net_in - (idle.net_in - after.net_in),
        "net_out": after.net_out - before.net_out - (idle.net_out - after.net_out),
        "cpu": (after.cpu - before.cpu) - (idle.cpu - after.cpu),
        "memory": after.memory - before.memory,
        "benchmark": bench,
    }


def wait_port(port: int) -> None:
    for _ in range(200):
        if port_answers("127.0.0.1", port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answers on port {port}")


async def upload(gw: AsyncTestClient[Any], i: int) -> str:
    color = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
    files = {"file": ("p.jpg", photo_bytes(color), "image/jpeg")}
    r = await gw.post("/v1/images", files=files, data={"externalUserId": f"user-{i}"})
    assert r.status_code == 201, r.text
    image_id: str = r.json()["id"]
    return image_id


async def wait_for(arrivals: list[float], n: int, within: float = 300.0) -> None:
    give_up = time.monotonic() + within
    while len(arrivals) < n:
        if time.monotonic() > give_up:
            raise TimeoutError(f"{len(arrivals)} of {n} webhooks arrived")
        await asyncio.sleep(0.05)


def redis_benchmark(port: int) -> dict[str, float]:
    command = ["redis-benchmark", "-p", str(port), "-c", "50", "-n", "100000", "-q"]
    out = subprocess.run(
        [*command, "-t", "get,set,hset,zadd"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    rates: dict[str, float] = {}
    for line in out.replace("\r", "\n").splitlines():
        m = re.match(r"(\w+).*?: ([\d.]+) requests per second", line.strip())
        if m:
            rates[m.group(1)] = float(m.group(2))
    return rates


def report(r: dict[str, Any], repeat_photo: bool) -> None:
    n = r["count"]
    net = {c: r["busy"][c] - r["idle"].get(c, 0) for c in r["busy"]}
    total = sum(net.values())
    print(machine())
    photo = "one shared photo" if repeat_photo else "a fresh photo each"
    print(f"{n} try-ons ({photo}) in {r['seconds']:.1f} s, each to one webhook endpoint\n")
    rows = sorted(((c, v / n) for c, v in net.items() if v / n >= 0.05), key=lambda x: -x[1])
    print(table(["command", "per try-on (net of idle)"], rows))
    idle_rate = sum(r["idle"].values()) / r["seconds"]
    cpu = r["cpu"] / n
    print()
    print(
        table(
            ["figure", "per try-on"],
            [
                ("commands (net of idle)", total / n),
                ("bytes into Redis", r["net_in"] / n),
                ("bytes out of Redis", r["net_out"] / n),
                ("memory kept (records, deliveries, usage)", r["memory"] / n),
                ("Redis CPU ms (net of idle)", cpu * 1000),
            ],
        )
    )
    bench = r["benchmark"]
    ops = sum(bench.values()) / max(len(bench), 1)
    print(f"\nidle: {idle_rate:.0f} commands/s (polling, heartbeats)")
    print(f"redis-benchmark (50 clients, no pipelining): {bench}")
    print(
        table(
            ["ceiling of one primary", "try-ons/s"],
            [
                ("1 / Redis CPU per try-on", 1 / cpu if cpu > 0 else float("nan")),
                ("redis-benchmark ops/s / commands per try-on", ops / (total / n)),
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--repeat-photo", action="store_true")
    args = parser.parse_args()
    # The gateway's and the worker's own log lines would bury the figures.
    logging.disable(logging.INFO)
    result = asyncio.run(run(args.count, args.concurrency, args.repeat_photo))
    report(result, args.repeat_photo)


if __name__ == "__main__":
    main()
