"""Completed try-ons per (emulator) minute against the account's rate limit, time-scaled.

The emulator enforces `--rate-limit` requests per 60 emulator seconds (all endpoints); at
`--speed` S that window is 60/S real seconds. The gateway's fleet budget is configured to the
same limit and window (GENLOOK_RATE_LIMIT, GENLOOK_RATE_WINDOW). Enough try-ons are submitted at
once to keep the budget saturated; after one window of ramp-up, completions and upstream calls
are counted over `--windows` windows, and every 429 the emulator sent during the run.

Two workloads for the gateway, side by side: `one-photo` (every try-on on the same photo,
uploaded upstream once, so one create per try-on) and `uploads` (every try-on on its own photo,
uploaded upstream on first use: an upload and a create per try-on, interleaved, as a shop's
traffic is). For `uploads` the figure to read is upstream calls per window against the limit.

Baseline, same emulator, same limit, same duration: the naive integration (bench/naive.py:
upload + create + 2 s polls, Retry-After honoured per request, no shared budget) run by
`--naive-tasks` concurrent tasks, each starting a new try-on as soon as its last one ended.

    uv run python -m bench.throughput [--speed 10] [--limit 100] [--windows 5]
        [--strategies sync,poll] [--workloads one-photo,uploads] [--naive-tasks 50 (0: skip)]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import random
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

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
    start_tryons,
    table,
    upload_photo,
    wait_terminal,
)
from bench.naive import NaiveClient


def api_calls(requests: dict[str, int]) -> int:
    """Requests to Genlook's API, the ones its rate limit counts: not the reads of result
    files (the gateway copies each result from its URL; Genlook serves those from storage)."""
    return sum(n for endpoint, n in requests.items() if endpoint != "files")


@dataclass
class Outcome:
    name: str
    submitted: int
    completed_per_window: list[int]
    calls_per_window: float
    rate_limited: int
    failed: int
    worker_cpu_s: float = float("nan")
    queue_latency_p50: float = float("nan")

    @property
    def per_window(self) -> float:
        w = self.completed_per_window
        return sum(w) / len(w) if w else float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children) from /proc."""
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _windows(times: list[float], start: float, window: float, count: int) -> list[int]:
    counts = [0] * count
    for t in times:
        i = int((t - start) // window)
        if 0 <= i < count:
            counts[i] += 1
    return counts


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.time()))


_SIZE = (240, 320)


@functools.cache
def _texture() -> Image.Image:
    return Image.effect_noise(_SIZE, 12)


def _own_photo(seed: int) -> bytes:
    """A photo no other try-on shares (240x320, ~15 KB): a gradient at a random angle over a
    noise texture, so no two clean to the same bytes and each upload costs about what a real
    one costs to send and to decode."""
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").resize(_SIZE).rotate(rng.uniform(0, 360))
    flat = Image.new("L", _SIZE, rng.randrange(256))
    buf = io.BytesIO()
    Image.merge("RGB", (gradient, _texture(), flat)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


async def _upload_and_start(
    api: Any, photos: list[bytes], external_id: str, *, concurrency: int
) -> list[str]:
    """Each try-on as a shop sends it: its photo first (POST /v1/images, which queues the
    upstream upload), then the try-on; uploads and creates interleave upstream."""
    sem = asyncio.Semaphore(concurrency)

    async def one(data: bytes) -> str:
        async with sem:
            return await start_tryon(api, await upload_photo(api, data), external_id)

    return await asyncio.gather(*(one(p) for p in photos))


async def measure_ours(
    bs: BenchStack, strategy: str, workload: str, args: argparse.Namespace
) -> Outcome:
    window = 60.0 / bs.speed
    flush_redis(bs.redis_url)
    bs.emulator.reset(speed=bs.speed, rateLimit=args.limit, credits=bs.credits)
    env = {"GENLOOK_WAIT_STRATEGY": strategy}
    if args.gateway_limit:
        env["GENLOOK_RATE_LIMIT"] = str(args.gateway_limit)
    bs.start_gateway(**env)
    bs.start_worker(**env)
    redis = redis_client(bs.redis_url)
    # Enough calls to keep the budget saturated past the last measured window.
    uploads = workload == "uploads"
    submitted = args.limit * (args.windows + 3) // 2 if uploads else args.limit * (args.windows + 2)
    try:
        async with gateway_client(bs.gateway_url, connections=20) as api:
            image_id = await upload_photo(api, photo_bytes())
            await put_product(api, "tee", bs.emulator.asset_url())
            warm = await start_tryon(api, image_id, "tee")
            await wait_terminal(api, warm, timeout=30)
            # Let the warm-up's calls leave both windows (ours and the emulator's).
            await asyncio.sleep(window)
            own = [_own_photo(i) for i in range(submitted)] if uploads else []
            before = bs.emulator.counters()
            cpu0 = _cpu_seconds(bs.pid("worker"))
            t0 = time.time()
            # Submitted in the background: uploading `uploads`' photos outlasts the ramp-up.
            submitting = asyncio.create_task(
                _upload_and_start(api, own, "tee", concurrency=20)
                if uploads
                else start_tryons(api, image_id, "tee", submitted, concurrency=20)
            )
            start = t0 + window
            await _sleep_until(start)
            at_start = bs.emulator.counters()
            end = start + args.windows * window
            await _sleep_until(end)
            at_end = bs.emulator.counters()
            ids = await submitting
            cpu = _cpu_seconds(bs.pid("worker")) - cpu0
        done_times: list[float] = []
        latencies: list[float] = []
        failed = 0
        for tryon_id in ids:
            doc = await record_doc(redis, tryon_id)
            if doc.get("status") == "completed" and doc.get("completed_at"):
                done_times.append(doc["completed_at"])
                latencies.append(doc["completed_at"] - doc["created_at"])
            elif doc.get("status") == "failed":
                failed += 1
    finally:
        await redis.aclose()
        bs.stop("worker")
        bs.stop("gateway")
    measured = counter_delta(at_start, at_end)
    run = counter_delta(before, at_end)
    return Outcome(
        name=f"ours ({strategy}, {workload})",
        submitted=submitted,
        completed_per_window=_windows(done_times, start, window, args.windows),
        calls_per_window=api_calls(measured["requests"]) / args.windows,
        rate_limited=run["rateLimited"],
        failed=failed,
        worker_cpu_s=cpu / (end - t0),
        queue_latency_p50=pct(latencies, 0.5),
    )


async def measure_naive(bs: BenchStack, args: argparse.Namespace) -> Outcome:
    window = 60.0 / bs.speed
    flush_redis(bs.redis_url)
    emu = bs.emulator
    emu.reset(speed=bs.speed, rateLimit=args.limit, credits=bs.credits)
    client = NaiveClient(
        emu.base_url,
        emu.api_key,
        speed=bs.speed,
        product_image_url=emu.asset_url(),
        connections=args.naive_tasks,
    )
    photo = photo_bytes()
    done_times: list[float] = []
    failed = 0
    started = 0
    before = emu.counters()
    t0 = time.time()
    start = t0 + window
    end = start + args.windows * window

    async def loop() -> None:
        nonlocal failed, started
        while time.time() < end:
            started += 1
            try:
                r = await client.tryon(photo, "tee", timeout=end - time.time() + window)
            except Exception:
                failed += 1
                continue
            if r.status == "completed":
                done_times.append(r.detected_at)
            else:
                failed += 1

    tasks = [asyncio.create_task(loop()) for _ in range(args.naive_tasks)]
    try:
        await _sleep_until(start)
        at_start = emu.counters()
        await _sleep_until(end)
        at_end = emu.counters()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
    measured = counter_delta(at_start, at_end)
    run = counter_delta(before, at_end)
    return Outcome(
        name=f"naive, {args.naive_tasks} tasks",
        submitted=started,
        completed_per_window=_windows(done_times, start, window, args.windows),
        calls_per_window=api_calls(measured["requests"]) / args.windows,
        rate_limited=run["rateLimited"],
        failed=failed,
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    naive = outcomes[-1] if outcomes[-1].name.startswith("naive") else None
    rows = []
    for o in outcomes:
        rows.append(
            [
                o.name,
                o.submitted,
                " ".join(str(c) for c in o.completed_per_window),
                o.per_window,
                100.0 * o.per_window / args.limit,
                o.calls_per_window,
                o.rate_limited,
                o.failed,
                o.per_window / naive.per_window if naive and naive.per_window else float("nan"),
                o.worker_cpu_s,
                o.queue_latency_p50,
            ]
        )
    out = [
        f"machine: {machine()}",
        f"emulator speed {args.speed}x: limit {args.limit} requests per emulator minute "
        f"= {60 / args.speed:.1f} real s; {args.windows} windows measured after 1 of ramp-up",
        "",
        table(
            [
                "client",
                "submitted",
                "completed per window",
                "try-ons/min",
                "% of limit",
                "calls/min (incl. 429s)",
                "429s",
                "failed",
                "ours/naive",
                "worker CPU (cores)",
                "latency p50 s",
            ],
            rows,
        ),
        "",
        "calls/min counts every request that reached the emulator (429s included); "
        "latency = record completed_at - created_at (queueing behind the budget included).",
    ]
    for o in outcomes:
        if o.name == "ours (sync, one-photo)":
            share = o.per_window / args.limit
            out.append(
                f"target sync try-ons/min >= 95% of limit: {'PASS' if share >= 0.95 else 'FAIL'}"
                f" ({100 * share:.1f}%)"
            )
        if o.name == "ours (sync, uploads)":
            share = o.calls_per_window / args.limit
            out.append(
                f"target sync upstream calls/min with uploads >= 95% of limit: "
                f"{'PASS' if share >= 0.95 else 'FAIL'} ({100 * share:.1f}%)"
            )
        if o.name.startswith("ours"):
            out.append(
                f"target {o.name} zero 429s: {'PASS' if o.rate_limited == 0 else 'FAIL'}"
                f" ({o.rate_limited})"
            )
    return "\n".join(out)


async def main(args: argparse.Namespace) -> None:
    with BenchStack(speed=args.speed, rate_limit=args.limit) as bs:
        bs.start_emulator()
        outcomes = [
            await measure_ours(bs, s, w, args)
            for s in args.strategies.split(",")
            for w in args.workloads.split(",")
        ]
        if args.naive_tasks:
            outcomes.append(await measure_naive(bs, args))
    print(report(outcomes, args))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--strategies", default="sync,poll")
    p.add_argument("--workloads", default="one-photo,uploads")
    p.add_argument("--naive-tasks", type=int, default=50, help="0: no naive baseline")
    p.add_argument(
        "--gateway-limit",
        type=int,
        default=0,
        help="GENLOOK_RATE_LIMIT for ours (default: the emulator's --limit)",
    )
    asyncio.run(main(p.parse_args()))
