"""Side experiments behind the findings in docs/benchmarks.md, each a pair measured alternately
in one run with the same wrk load, reported as server CPU microseconds per request (from
/proc, user + system):

- bare Litestar GET with 1 dependency vs 3 independent dependencies;
- our gateway's POST and GET as is vs with Redis `socket_timeout=None`;
- redis-py asyncio HGET, 32 concurrent tasks: client CPU per command (the floor per round trip).

    uv run python -m bench.overheads [--duration 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from service.devstack import free_port, wait_http

from bench._common import BENCH_REDIS_URL, BenchStack, flush_redis, machine, table
from bench.gateway_rps import LoadGen, _prepare


async def _redis_floor(seconds: float = 3.0) -> float:
    from redis.asyncio import Redis

    r = Redis.from_url(BENCH_REDIS_URL, socket_timeout=10, health_check_interval=30)
    await r.hset("bench:floor", "doc", b"x" * 600)
    end = time.monotonic() + seconds

    async def worker() -> int:
        n = 0
        while time.monotonic() < end:
            await r.hget("bench:floor", "doc")
            n += 1
        return n

    cpu0 = time.process_time()
    counts = await asyncio.gather(*(worker() for _ in range(32)))
    cpu = time.process_time() - cpu0
    await r.delete("bench:floor")
    await r.aclose()
    return 1e6 * cpu / sum(counts)


def main(args: argparse.Namespace) -> None:
    workdir = tempfile.mkdtemp(prefix="tryon-bench-overheads-")
    try:
        with BenchStack(speed=100.0) as bs:
            bs.start_emulator()
            flush_redis(bs.redis_url)
            ours = bs.start_gateway()
            bs.start_worker()
            body, tryon_id = asyncio.run(_prepare(bs))
            bs.stop("worker")
            env = {**os.environ, **bs.env()}
            p_patched, p_deps = free_port(), free_port()
            bs.stack.procs["patched"] = subprocess.Popen(
                [sys.executable, "bench/_gateway_no_socket_timeout.py", str(p_patched)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            bs.stack.procs["deps"] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.bare_deps_app:create_app",
                    "--factory",
                    "--port",
                    str(p_deps),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            patched = f"http://127.0.0.1:{p_patched}"
            deps = f"http://127.0.0.1:{p_deps}"
            wait_http(f"{patched}/healthz", bs.stack.procs["patched"])
            wait_http(f"{deps}/one/x", bs.stack.procs["deps"])
            gen = LoadGen(args.connections, workdir)
            get_path = f"/v1/try-ons/{tryon_id}"
            pairs = [
                (
                    "bare Litestar GET",
                    (deps + "/one/x", "deps"),
                    (deps + "/three/x", "deps"),
                    "1 dependency",
                    "3 dependencies",
                ),
                (
                    "gateway POST /v1/try-ons",
                    (ours + "/v1/try-ons", "gateway"),
                    (patched + "/v1/try-ons", "patched"),
                    "as is",
                    "socket_timeout=None",
                ),
                (
                    "gateway GET /v1/try-ons/{id}",
                    (ours + get_path, "gateway"),
                    (patched + get_path, "patched"),
                    "as is",
                    "socket_timeout=None",
                ),
            ]
            rows = []
            for title, a, b, a_name, b_name in pairs:
                method = "POST" if "POST" in title else "GET"
                per: dict[str, list[float]] = {a_name: [], b_name: []}
                for url, proc in (a, b):
                    gen.run(url, method, body, 2, bs.stack.procs[proc].pid)
                for _ in range(args.rounds):
                    for name, (url, proc) in ((a_name, a), (b_name, b)):
                        load = gen.run(url, method, body, args.duration, bs.stack.procs[proc].pid)
                        per[name].append(1e6 * load.server_cpu / load.rps)
                ua, ub = statistics.median(per[a_name]), statistics.median(per[b_name])
                rows.append([title, a_name, ua, b_name, ub, f"{100 * (ub - ua) / ua:+.0f}%"])
            floor = asyncio.run(_redis_floor())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(f"load: {gen.tool}, {args.connections} connections, {args.duration:g} s x {args.rounds}")
    print()
    print(table(["experiment", "A", "CPU us/req", "B", "CPU us/req", "B vs A"], rows))
    print()
    print(f"redis-py asyncio HGET, 32 tasks: {floor:.0f} us of client CPU per command")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    main(p.parse_args())
