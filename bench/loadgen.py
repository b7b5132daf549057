"""Fallback load generator when `wrk` is not installed: N keep-alive connections in one
process, each sending the same request back to back for a fixed time. Prints one JSON line:
{"requests", "errors", "seconds", "rps", "p50_ms", "p99_ms"}. Python is slower than wrk, so
figures from this tool are a lower bound on the server's capacity (say which tool was used).

    uv run python -m bench.loadgen URL [--method POST] [--body JSON] [--header K:V]...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx


async def main(args: argparse.Namespace) -> None:
    headers = dict(h.split(":", 1) for h in args.header)
    if args.body:
        headers.setdefault("Content-Type", "application/json")
    n = args.connections
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + args.duration
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < end:
                t = time.perf_counter()
                try:
                    r = await client.request(
                        args.method, args.url, content=args.body or None, headers=headers
                    )
                    ok = r.status_code < 400
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.connections)))
        seconds = time.monotonic() - t0
    latencies.sort()
    n = len(latencies)
    print(
        json.dumps(
            {
                "requests": n,
                "errors": errors,
                "seconds": seconds,
                "rps": n / seconds,
                "p50_ms": 1000 * latencies[n // 2] if n else None,
                "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
            }
        )
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--method", default="GET")
    p.add_argument("--body", default="")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    asyncio.run(main(p.parse_args()))
