"""Priority lanes, side by side in one run: two apps on one Genlook account. App A submits a
batch of try-ons (`--batch`, 1,000); app B starts an interactive try-on every `--every`
emulator seconds. B's time to result (accepted to completed, from the records) with lanes on,
against the same workload first come, first served (`WORKER_LANES=false`).

Target: B's p95 within the generation time plus two budget slots (first come, first served:
minutes at real speed), allowing arq's pickup delay (WORKER_POLL_DELAY, 0.1 s real, which the
emulator's speed does not scale). The emulator runs `--speed` times faster than real time; its rate
limit is `--limit` requests per emulator minute.

    uv run python -m bench.lanes [--speed 10] [--batch 1000] [--every 5] [--samples 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench._common import (
    APP,
    SECRET,
    BenchStack,
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

OTHER_SECRET = "sk_bench_other_app_key_0123456789abc"
OTHER_APP = "shop-b"


@dataclass
class Outcome:
    name: str
    b_latencies: list[float]
    b_generation: list[float]
    b_queued: list[float]
    batch_done_at_end: int
    credits: int
    rate_limited: int


async def _prepare(api: httpx.AsyncClient, asset: str) -> str:
    """A photo and the product, and one try-on run through so the photo is upstream."""
    image_id = await upload_photo(api, photo_bytes())
    await put_product(api, "tee", asset)
    await wait_terminal(api, await start_tryon(api, image_id, "tee"), timeout=60)
    return image_id


async def measure(bs: BenchStack, lanes: bool, args: argparse.Namespace) -> Outcome:
    flush_redis(bs.redis_url)
    bs.emulator.reset(speed=bs.speed, rateLimit=args.limit, credits=bs.credits)
    env = {
        "GATEWAY_SECRET_KEYS": f"{SECRET}={APP},{OTHER_SECRET}={OTHER_APP}",
        "WORKER_LANES": "true" if lanes else "false",
        # Result images go to the run's temporary directory, removed with it.
        "RESULTS_STORE_URL": os.path.join(bs.logdir, "results"),
    }
    bs.start_gateway(**env)
    bs.start_worker(**env)
    redis = redis_client(bs.redis_url)
    try:
        async with (
            gateway_client(bs.gateway_url, connections=20) as a,
            gateway_client(bs.gateway_url, connections=20) as b,
        ):
            b.headers["Authorization"] = f"Bearer {OTHER_SECRET}"
            a_image, b_image = await asyncio.gather(
                _prepare(a, bs.emulator.asset_url()), _prepare(b, bs.emulator.asset_url())
            )
            before = bs.emulator.counters()
            r = await a.post(
                "/v1/batches",
                json={
                    "person": {"image": {"source": {"id": a_image}}},
                    "products": [{"externalId": "tee"}] * args.batch,
                },
                timeout=120,
            )
            r.raise_for_status()
            batch_id = r.json()["id"]
            ids: list[str] = []
            every = args.every / bs.speed
            for _ in range(args.samples):
                ids.append(await start_tryon(b, b_image, "tee"))
                await asyncio.sleep(every)
            for tryon_id in ids:
                await wait_terminal(b, tryon_id, timeout=60 * 30 / bs.speed + 600)
            progress = (await a.get(f"/v1/batches/{batch_id}")).json()["counts"]
            # The rest of the batch is not what is measured: cancel it (it spends nothing).
            await a.delete(f"/v1/batches/{batch_id}", timeout=120)
            after = bs.emulator.counters()
        latencies, generation, queued = [], [], []
        for tryon_id in ids:
            doc = await record_doc(redis, tryon_id)
            latencies.append(doc["completed_at"] - doc["created_at"])
            # From the create sent to the result stored: the generation (sync call) and its copy.
            generation.append(doc["completed_at"] - doc["create_started_at"])
            queued.append(doc["create_started_at"] - doc["created_at"])
    finally:
        await redis.aclose()
        bs.stop("worker")
        bs.stop("gateway")
    return Outcome(
        name="lanes" if lanes else "first come, first served",
        b_latencies=latencies,
        b_generation=generation,
        b_queued=queued,
        batch_done_at_end=progress["completed"],
        credits=after["creditsSpent"] - before["creditsSpent"],
        rate_limited=after["rateLimited"] - before["rateLimited"],
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    slot = 60.0 / args.speed / args.limit
    rows: list[list[Any]] = []
    for o in outcomes:
        rows.append(
            [
                o.name,
                len(o.b_latencies),
                pct(o.b_latencies, 0.5),
                pct(o.b_latencies, 0.95),
                max(o.b_latencies),
                pct(o.b_queued, 0.5),
                pct(o.b_queued, 0.95),
                pct(o.b_generation, 0.5),
                o.batch_done_at_end,
                o.credits,
                o.rate_limited,
            ]
        )
    out = [
        f"machine: {machine()}",
        f"emulator speed {args.speed}x, limit {args.limit}/emulator minute (one budget slot "
        f"= {slot * 1000:.0f} ms real); app A: a batch of {args.batch}; app B: a try-on every "
        f"{args.every} emulator s ({args.every / args.speed:.2f} real s), {args.samples} of them",
        "",
        table(
            [
                "queue",
                "B try-ons",
                "B p50 s",
                "B p95 s",
                "B max s",
                "B to create p50 s",
                "B to create p95 s",
                "B generation p50 s",
                "batch done when B ended",
                "credits",
                "429s",
            ],
            rows,
        ),
        "",
    ]
    lanes = next(o for o in outcomes if o.name == "lanes")
    # arq's pickup (WORKER_POLL_DELAY, 0.1 s real) is not scaled by the emulator's speed: at
    # speed 10 it is nearly two budget slots, at real speed a sixth of one. It is allowed for.
    pickup = 0.1
    bound = pct(lanes.b_generation, 0.95) + 2 * slot + pickup
    p95 = pct(lanes.b_latencies, 0.95)
    out.append(
        f"target B p95 <= generation p95 + 2 slots + arq pickup ({bound:.2f} s): "
        f"{'PASS' if p95 <= bound else 'FAIL'} ({p95:.2f} s)"
    )
    queued = pct(lanes.b_queued, 0.95)
    out.append(
        f"target B accepted-to-create p95 <= 2 slots + arq pickup ({2 * slot + pickup:.2f} s): "
        f"{'PASS' if queued <= 2 * slot + pickup else 'FAIL'} ({queued:.2f} s)"
    )
    return "\n".join(out)


async def main(args: argparse.Namespace) -> None:
    with BenchStack(speed=args.speed, rate_limit=args.limit) as bs:
        bs.start_emulator()
        started = time.monotonic()
        outcomes = [await measure(bs, True, args), await measure(bs, False, args)]
    print(report(outcomes, args))
    print(f"\n(run took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--every", type=float, default=5.0, help="emulator seconds between B's")
    p.add_argument("--samples", type=int, default=20)
    asyncio.run(main(p.parse_args()))
