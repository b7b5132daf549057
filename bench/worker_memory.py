"""Worker (and gateway) memory per in-flight try-on, with the `sync` strategy.

Every try-on in flight holds one `POST /try-on/sync` open for its whole generation, so the
worker's memory grows with the number of try-ons it has in flight. The emulator's generations
are made long (`--duration`, real seconds) and its rate limit high, so that all of them are in
flight at once; WORKER_MAX_JOBS and GENLOOK_MAX_CONNECTIONS let one worker hold them all. The
worker's and the gateway's RSS (/proc/<pid>/status VmRSS) are read when idle (after a warm-up
try-on) and sampled while the try-ons run; the sample with the most generations in flight
(emulator counters: sync creates received minus answered) gives the peak.

Baseline, same run: the same measurement with fewer try-ons in flight (`--counts`, default
100, 500, 1000), each with a fresh worker and gateway. If memory grows linearly with the
try-ons in flight, every row gives the same KB per try-on.

    uv run python -m bench.worker_memory [--counts 100,500,1000] [--duration 40]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import dataclass

from bench._common import (
    BenchStack,
    flush_redis,
    gateway_client,
    machine,
    photo_bytes,
    put_product,
    start_tryon,
    start_tryons,
    table,
    upload_photo,
    wait_terminal,
)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Sample:
    inflight: int
    worker_mb: float
    gateway_mb: float


@dataclass
class Outcome:
    target: int
    idle: Sample
    peak: Sample
    completed: int

    def per_tryon_kb(self, which: str) -> float:
        grown = getattr(self.peak, which) - getattr(self.idle, which)
        return grown * 1024 / self.peak.inflight


def in_flight(bs: BenchStack) -> int:
    c = bs.emulator.counters()
    sent: int = c["requests"].get("create_try_on_sync", 0)
    answered: int = c["processed"].get("create_try_on_sync", 0)
    return sent - answered


async def measure(bs: BenchStack, target: int, duration: float) -> Outcome:
    flush_redis(bs.redis_url)
    bs.emulator.reset(speed=1.0, rateLimit=100_000, durationMedian=duration, durationSigma=0.02)
    env = {
        "GENLOOK_WAIT_STRATEGY": "sync",
        "GENLOOK_RATE_LIMIT": "100000",
        "GENLOOK_MAX_CONNECTIONS": str(target + 100),
        "WORKER_MAX_JOBS": str(target + 100),
        "WORKER_JOB_TIMEOUT": str(duration * 3),
    }
    bs.start_gateway(**env)
    bs.start_worker(**env)
    gw, worker = bs.pid("gateway"), bs.pid("worker")
    try:
        async with gateway_client(bs.gateway_url, connections=50) as api:
            image_id = await upload_photo(api, photo_bytes())
            await put_product(api, "tee", bs.emulator.asset_url())
            # Warm-up: the connections and caches every try-on needs are in place. Its long
            # generation is hurried along by advancing the emulator's clock.
            warm = await start_tryon(api, image_id, "tee")
            while in_flight(bs) == 0:  # noqa: ASYNC110 - another process's counter
                await asyncio.sleep(0.1)
            bs.emulator.control("POST", "clock/advance", {"seconds": duration * 2})
            await wait_terminal(api, warm, timeout=60)
            await asyncio.sleep(1.0)
            idle = Sample(0, rss_mb(worker), rss_mb(gw))
            ids = await start_tryons(api, image_id, "tee", target, concurrency=50)
            peak = idle
            deadline = time.monotonic() + duration * 2
            while time.monotonic() < deadline:
                now = Sample(in_flight(bs), rss_mb(worker), rss_mb(gw))
                if (now.inflight, now.worker_mb) > (peak.inflight, peak.worker_mb):
                    peak = now
                if peak.inflight and now.inflight < peak.inflight // 2:
                    break  # the generations are ending: past the peak
                await asyncio.sleep(0.25)
            statuses = await asyncio.gather(
                *(wait_terminal(api, t, timeout=duration * 3) for t in ids)
            )
    finally:
        bs.stop("worker")
        bs.stop("gateway")
    return Outcome(target, idle, peak, sum(s == "completed" for s in statuses))


async def main(args: argparse.Namespace) -> None:
    with BenchStack(speed=1.0) as bs:
        bs.start_emulator()
        runs = [await measure(bs, n, args.duration) for n in args.counts]
    print(f"# Worker memory per in-flight try-on ({machine()})")
    print(f"sync strategy, generations of {args.duration:.0f} s, one worker, one gateway\n")
    marginal = [float("nan")] + [
        (b.peak.worker_mb - a.peak.worker_mb) * 1024 / (b.peak.inflight - a.peak.inflight)
        for a, b in itertools.pairwise(runs)
    ]
    rows = [
        (
            r.target,
            r.peak.inflight,
            r.completed,
            r.idle.worker_mb,
            r.peak.worker_mb,
            r.per_tryon_kb("worker_mb"),
            step,
            r.idle.gateway_mb,
            r.peak.gateway_mb,
            r.per_tryon_kb("gateway_mb"),
        )
        for r, step in zip(runs, marginal, strict=True)
    ]
    headers = ["try-ons", "peak in flight", "completed", "worker idle MB", "worker peak MB",
               "worker KB/try-on", "worker KB/try-on, step from previous row",
               "gateway idle MB", "gateway peak MB", "gateway KB/try-on"]  # fmt: skip
    print(table(headers, rows))
    if len(runs) > 2:
        print(
            f"\nworker KB per added try-on, last step / first step: "
            f"{marginal[-1] / marginal[1]:.2f} (1.0 = linear)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--counts", type=lambda v: [int(x) for x in v.split(",")], default=[100, 500, 1000]
    )
    parser.add_argument("--duration", type=float, default=40.0, help="generation, real seconds")
    asyncio.run(main(parser.parse_args()))
