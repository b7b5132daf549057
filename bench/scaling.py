"""Completed try-ons per minute with 1, 2 and 3 workers, the upstream limit raised out of the way.

With the `sync` strategy every try-on in flight holds one upstream connection for its whole
generation, so one worker completes at most min(WORKER_MAX_JOBS, GENLOOK_MAX_CONNECTIONS) /
generation time: 100 / ~10 s, about 600 a minute with the defaults. That is far above Genlook's
default 100 requests a minute, which one worker saturates; workers are added for an account
whose limit was raised. Here the emulator's limit and GENLOOK_RATE_LIMIT are `--limit`
(default 6,000 a minute), so the workers, not the budget, are the bottleneck.

For each worker count: a fresh gateway and workers on a flushed database, a backlog of
try-ons larger than the workers can finish in the run, then completions (the records'
`completed_at`) counted over `--window` seconds after `--ramp` seconds. The emulator runs at
speed 1 (generations ~10 s). Ratios are to the one-worker run of the same invocation.

    uv run python -m bench.scaling [--limit 6000] [--ramp 12] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from service.keys import Keys
from service.ops.heartbeats import Heartbeats

from bench._common import (
    BenchStack,
    flush_redis,
    gateway_client,
    machine,
    photo_bytes,
    put_product,
    record_doc,
    redis_client,
    start_tryons,
    table,
    upload_photo,
)

# A worker completes at most this many try-ons a second (100 connections / ~10 s generations);
# the backlog is sized from it so no run runs dry.
_PER_WORKER_PER_S = 10


@dataclass
class Outcome:
    workers: int
    submitted: int
    completed: int
    failed: int
    window: float
    rate_limited: int

    @property
    def per_minute(self) -> float:
        return self.completed * 60 / self.window


async def wait_workers(url: str, count: int, within: float = 60) -> None:
    redis = redis_client(url)
    try:
        deadline = time.monotonic() + within
        while len(await Heartbeats(redis, Keys()).live()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} workers did not start")
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()


async def measure(bs: BenchStack, workers: int, args: argparse.Namespace) -> Outcome:
    flush_redis(bs.redis_url)
    bs.emulator.reset(speed=1.0, rateLimit=args.limit, credits=bs.credits)
    env = {"GENLOOK_WAIT_STRATEGY": "sync", "GENLOOK_RATE_LIMIT": str(args.limit)}
    bs.start_gateway(**env)
    names = [f"worker{i}" for i in range(workers)]
    for name in names:
        bs.start_worker(name, **env)
    submitted = int(_PER_WORKER_PER_S * workers * (args.ramp + args.window) * 1.5)
    redis = redis_client(bs.redis_url)
    try:
        await wait_workers(bs.redis_url, workers)
        async with gateway_client(bs.gateway_url, connections=20) as api:
            image_id = await upload_photo(api, photo_bytes())
            await put_product(api, "tee", bs.emulator.asset_url())
            before = bs.emulator.counters()
            t0 = time.time()
            ids = await start_tryons(api, image_id, "tee", submitted, concurrency=20)
            start, end = t0 + args.ramp, t0 + args.ramp + args.window
            await asyncio.sleep(max(0.0, end - time.time()))
            after = bs.emulator.counters()
        done = failed = 0
        for tryon_id in ids:
            doc = await record_doc(redis, tryon_id)
            if doc.get("status") == "completed" and start <= doc["completed_at"] < end:
                done += 1
            elif doc.get("status") == "failed":
                failed += 1
    finally:
        await redis.aclose()
        for name in names:
            bs.stop(name)
        bs.stop("gateway")
    return Outcome(
        workers=workers,
        submitted=submitted,
        completed=done,
        failed=failed,
        window=args.window,
        rate_limited=after["rateLimited"] - before["rateLimited"],
    )


async def main(args: argparse.Namespace) -> None:
    with BenchStack(speed=1.0, rate_limit=args.limit) as bs:
        bs.start_emulator()
        runs = [await measure(bs, n, args) for n in (1, 2, 3)]
    one = runs[0].per_minute
    print(f"# Scaling out: workers vs completed try-ons ({machine()})")
    print(
        f"sync strategy, emulator speed 1 (~10 s generations), limit {args.limit}/min, "
        f"counted over {args.window:.0f} s after {args.ramp:.0f} s\n"
    )
    headers = ["workers", "submitted", "completed in window", "try-ons/min", "vs 1 worker",
               "failed", "429s"]  # fmt: skip
    rows = [
        (r.workers, r.submitted, r.completed, r.per_minute, r.per_minute / one, r.failed,
         r.rate_limited)
        for r in runs
    ]  # fmt: skip
    print(table(headers, rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=6000, help="upstream requests per minute")
    parser.add_argument("--ramp", type=float, default=12.0)
    parser.add_argument("--window", type=float, default=30.0)
    asyncio.run(main(parser.parse_args()))
