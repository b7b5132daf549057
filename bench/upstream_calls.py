"""Upstream calls per completed try-on, and how late we notice a finished generation.

Three clients, one emulator, the same duration distribution (lognormal, median 10 emulator
seconds, sigma 0.35), the same number of try-ons and the same client concurrency:

- ours, GENLOOK_WAIT_STRATEGY=sync  (one POST /try-on/sync held until the result);
- ours, GENLOOK_WAIT_STRATEGY=poll  (POST /try-on, then polls at observed duration quantiles);
- the naive integration (bench/naive.py): upload, POST /try-on, poll every 2 s.

Steady state: the product and the photo are known (one warm-up try-on first); only calls made
after the warm-up count (emulator counters are diffed). Detection delay = our record's
`completed_at` (or the moment the naive client saw the result) minus the moment the emulator
moved the generation to its terminal state (its history, converted to wall time).

    uv run python -m bench.upstream_calls [--count 100] [--speed 20] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench._common import (
    BenchStack,
    counter_delta,
    flush_redis,
    gateway_client,
    machine,
    pct,
    photo_bytes,
    put_product,
    record_doc,
    redis_client,
    start_tryon,
    table,
    upload_photo,
    wait_terminal,
)
from bench.naive import NaiveClient

DURATION_MEDIAN = 10.0
DURATION_SIGMA = 0.35


@dataclass
class Outcome:
    name: str
    count: int
    completed: int
    calls: dict[str, int]
    rate_limited: int
    delays_ms: list[float]
    wall_s: float

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def per_tryon(self) -> float:
        return self.total_calls / max(1, self.completed)


def _reset(bs: BenchStack) -> None:
    flush_redis(bs.redis_url)
    bs.emulator.reset(
        speed=bs.speed,
        rateLimit=bs.rate_limit,
        credits=bs.credits,
        durationMedian=DURATION_MEDIAN,
        durationSigma=DURATION_SIGMA,
    )


async def _bounded(concurrency: int, count: int, one: Any) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def run(i: int) -> Any:
        async with sem:
            return await one(i)

    return list(await asyncio.gather(*(run(i) for i in range(count))))


async def measure_ours(bs: BenchStack, strategy: str, count: int, concurrency: int) -> Outcome:
    _reset(bs)
    bs.start_gateway(GENLOOK_WAIT_STRATEGY=strategy)
    bs.start_worker(GENLOOK_WAIT_STRATEGY=strategy)
    redis = redis_client(bs.redis_url)
    try:
        async with gateway_client(bs.gateway_url) as api:
            image_id = await upload_photo(api, photo_bytes())
            await put_product(api, "tee", bs.emulator.asset_url())
            # Warm-up: the photo reaches Genlook, the product is created there and cached.
            warm = await start_tryon(api, image_id, "tee")
            await wait_terminal(api, warm, timeout=30)
            before = bs.emulator.counters()
            t0 = time.monotonic()

            async def one(_: int) -> str:
                tryon_id = await start_tryon(api, image_id, "tee")
                await wait_terminal(api, tryon_id, timeout=60)
                return tryon_id

            ids = await asyncio.wait_for(_bounded(concurrency, count, one), timeout=150)
            wall = time.monotonic() - t0
            after = bs.emulator.counters()
        delta = counter_delta(before, after)
        delays: list[float] = []
        completed = 0
        for tryon_id in ids:
            doc = await record_doc(redis, tryon_id)
            if doc.get("status") != "completed":
                continue
            completed += 1
            upstream_done = bs.emulator.completed_wall(doc["generation_id"])
            if upstream_done is not None and doc.get("completed_at"):
                delays.append((doc["completed_at"] - upstream_done) * 1000)
    finally:
        await redis.aclose()
        bs.stop("worker")
        bs.stop("gateway")
    return Outcome(
        name=f"ours ({strategy})",
        count=count,
        completed=completed,
        calls=delta["requests"],
        rate_limited=delta["rateLimited"],
        delays_ms=delays,
        wall_s=wall,
    )


async def measure_naive(bs: BenchStack, count: int, concurrency: int) -> Outcome:
    _reset(bs)
    emu = bs.emulator
    client = NaiveClient(
        emu.base_url, emu.api_key, speed=bs.speed, product_image_url=emu.asset_url()
    )
    photo = photo_bytes()
    try:
        await client.tryon(photo, "tee")  # warm-up, same as ours
        before = emu.counters()
        t0 = time.monotonic()
        results = await asyncio.wait_for(
            _bounded(concurrency, count, lambda _: client.tryon(photo, "tee")), timeout=150
        )
        wall = time.monotonic() - t0
        after = emu.counters()
    finally:
        await client.aclose()
    delta = counter_delta(before, after)
    delays = []
    completed = 0
    for r in results:
        if r.status != "completed" or r.generation_id is None:
            continue
        completed += 1
        upstream_done = emu.completed_wall(r.generation_id)
        if upstream_done is not None:
            delays.append((r.detected_at - upstream_done) * 1000)
    return Outcome(
        name="naive (upload + create + 2 s poll)",
        count=count,
        completed=completed,
        calls=delta["requests"],
        rate_limited=delta["rateLimited"],
        delays_ms=delays,
        wall_s=wall,
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    naive = outcomes[-1]
    rows = []
    for o in outcomes:
        by: Counter[str] = Counter(o.calls)
        rows.append(
            [
                o.name,
                f"{o.completed}/{o.count}",
                o.total_calls,
                o.per_tryon,
                by["upload_image"],
                by["create_try_on"] + by["create_try_on_sync"],
                by["get_generation"],
                o.rate_limited,
                pct(o.delays_ms, 0.5),
                pct(o.delays_ms, 0.95),
                max(o.delays_ms, default=float("nan")),
                naive.per_tryon / o.per_tryon if o.per_tryon else float("nan"),
                pct(naive.delays_ms, 0.5) / pct(o.delays_ms, 0.5),
            ]
        )
    out = [
        f"machine: {machine()}",
        f"emulator speed {args.speed}x, duration median {DURATION_MEDIAN}s sigma {DURATION_SIGMA} "
        f"(emulator time), {args.count} try-ons per client, {args.concurrency} in flight, "
        "after one warm-up try-on; detection delay in real milliseconds",
        "",
        table(
            [
                "client",
                "done",
                "calls",
                "calls/try-on",
                "uploads",
                "creates",
                "polls",
                "429s",
                "detect p50 ms",
                "detect p95 ms",
                "detect max ms",
                "naive/ours calls",
                "naive/ours p50",
            ],
            rows,
        ),
        "",
    ]
    out.append(
        "Detection delays are real milliseconds at this speed. A poller's delay is set by its "
        f"poll schedule, which is divided by the speed: at speed 1 the naive and poll delays "
        f"would be ~{args.speed:g}x larger, while the sync delay (processing only) would not."
    )
    out.append("")
    by_name = {o.name: o for o in outcomes}
    sync, poll = by_name.get("ours (sync)"), by_name.get("ours (poll)")
    checks = []
    if sync is not None:
        checks.append(("sync calls/try-on <= 1.05", sync.per_tryon <= 1.05, sync.per_tryon))
        p50 = pct(sync.delays_ms, 0.5)
        checks.append(("sync detection p50 < 100 ms", p50 < 100, p50))
    if poll is not None:
        checks.append(("poll calls/try-on <= 2.5", poll.per_tryon <= 2.5, poll.per_tryon))
    for label, ok, value in checks:
        out.append(f"target {label}: {'PASS' if ok else 'FAIL'} ({value:.2f})")
    return "\n".join(out)


async def main(args: argparse.Namespace) -> None:
    with BenchStack(speed=args.speed) as bs:
        bs.start_emulator()
        outcomes = [
            await measure_ours(bs, strategy, args.count, args.concurrency)
            for strategy in args.strategies.split(",")
        ]
        outcomes.append(await measure_naive(bs, args.count, args.concurrency))
    print(report(outcomes, args))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--speed", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--strategies", default="sync,poll", help="ours, comma separated")
    asyncio.run(main(p.parse_args()))
