"""Two upstream accounts in a pool against one (docs/accounts.md), side by side in one run.

Two emulators, one per Genlook account, each enforcing `--limit` requests per 60 emulator
seconds (60/S real seconds at `--speed` S). Three runs of the same shop traffic (every try-on on
one photo and one product, all submitted at once):

- `one account`: the app on the default account only;
- `two accounts`: the app on the pool [default, b]: the pool spills over to `b` what the
  default account's rate cannot carry, so completions per window should about double, with no
  429 from either emulator;
- `out of credits`: the same pool, the default account holding credits for about half a
  window's try-ons: it answers 402 mid-run, its try-ons fail over to `b`. Every try-on is waited
  for: 0 client-visible failures, and generations created over both emulators == try-ons
  accepted (none lost, none generated twice).

    uv run python -m bench.accounts [--speed 10] [--limit 100] [--windows 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from service.accounts.crypto import new_master_key
from service.devstack import free_port, wait_http

from bench._common import (
    APP,
    HOST,
    BenchStack,
    EmulatorHandle,
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
    wait_terminal,
)
from bench.throughput import _windows

SECOND_KEY = "gk_bench_second_account_key_9876543210zyxwvutsrq"
MASTER_KEY = new_master_key()


@dataclass
class Outcome:
    name: str
    submitted: int
    completed_per_window: list[int]
    rate_limited: int
    failed: int
    generations: int
    by_account: dict[str, int]

    @property
    def per_window(self) -> float:
        counts = self.completed_per_window
        return sum(counts) / len(counts) if counts else 0.0


def _accounts_cli(bs: BenchStack, *args: str, stdin: str = "") -> None:
    subprocess.run(
        [sys.executable, "-m", "service.cli", "accounts", *args],
        input=stdin,
        env={**os.environ, "REDIS_URL": bs.redis_url, "GATEWAY_MASTER_KEY": MASTER_KEY},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


def start_second(bs: BenchStack, limit: int) -> EmulatorHandle:
    port = free_port()
    bs.spawn(
        "emulator-b",
        "emulator",
        "--port",
        str(port),
        "--api-key",
        SECOND_KEY,
        "--speed",
        str(bs.speed),
        "--rate-limit",
        str(limit),
        "--credits",
        str(bs.credits),
    )
    root = f"http://{HOST}:{port}"
    wait_http(f"{root}/_emulator/counters", bs.stack.procs["emulator-b"])
    return EmulatorHandle(root=root, api_key=SECOND_KEY, speed=bs.speed)


async def measure(
    bs: BenchStack,
    b: EmulatorHandle,
    args: argparse.Namespace,
    *,
    name: str,
    pool: list[str],
    submitted: int,
    default_credits: int | None = None,
    wait_all: bool = False,
) -> Outcome:
    window = 60.0 / bs.speed
    flush_redis(bs.redis_url)
    bs.emulator.reset(speed=bs.speed, rateLimit=args.limit, credits=default_credits or bs.credits)
    b.reset(speed=bs.speed, rateLimit=args.limit, credits=bs.credits)
    _accounts_cli(bs, "create", "b", "--base-url", b.base_url, stdin=SECOND_KEY + "\n")
    _accounts_cli(bs, "pool", APP, *pool)
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY}
    bs.start_gateway(**env)
    bs.start_worker(**env)
    redis = redis_client(bs.redis_url)
    try:
        async with gateway_client(bs.gateway_url, connections=20) as api:
            image_id = await upload_photo(api, photo_bytes())
            await put_product(api, "tee", bs.emulator.asset_url())
            t0 = time.time()
            submitting = asyncio.create_task(
                start_tryons(api, image_id, "tee", submitted, concurrency=20)
            )
            start = t0 + window  # one window of ramp-up
            await asyncio.sleep(max(0.0, start + args.windows * window - time.time()))
            ids = await submitting
            if wait_all:
                await asyncio.gather(*(wait_terminal(api, t, timeout=300) for t in ids))
        done: list[float] = []
        failed = 0
        by_account: dict[str, int] = {}
        missing = [t for t in ids if not await redis.exists(f"tryon:t:{t}")]
        if missing:
            # Seen while another run shared the database: it flushed ours mid-run.
            raise RuntimeError(
                f"{len(missing)} of {len(ids)} try-on records gone: did another process flush "
                f"{bs.redis_url}? Run again, or set BENCH_REDIS_URL to a database of your own."
            )
        for tryon_id in ids:
            doc: dict[str, Any] = await record_doc(redis, tryon_id)
            if doc.get("status") == "completed":
                done.append(doc["completed_at"])
                account = doc.get("account", "?")
                by_account[account] = by_account.get(account, 0) + 1
            elif doc.get("status") == "failed":
                failed += 1
    finally:
        await redis.aclose()
        bs.stop("worker")
        bs.stop("gateway")
    a_counts, b_counts = bs.emulator.counters(), b.counters()
    return Outcome(
        name=name,
        submitted=submitted,
        completed_per_window=_windows(done, start, window, args.windows),
        rate_limited=a_counts["rateLimited"] + b_counts["rateLimited"],
        failed=failed,
        generations=a_counts["generationsCreated"] + b_counts["generationsCreated"],
        by_account=by_account,
    )


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    one = outcomes[0]
    rows = [
        [
            o.name,
            o.submitted,
            " ".join(str(c) for c in o.completed_per_window),
            o.per_window,
            o.per_window / one.per_window if one.per_window else float("nan"),
            o.rate_limited,
            o.failed,
            o.generations,
            " ".join(f"{k}={v}" for k, v in sorted(o.by_account.items())),
        ]
        for o in outcomes
    ]
    two, out_of_credits = outcomes[1], outcomes[2]
    ratio = two.per_window / one.per_window if one.per_window else 0.0
    no_429 = all(o.rate_limited == 0 for o in outcomes)
    lines = [
        f"machine: {machine()}",
        f"emulator speed {args.speed}x: limit {args.limit} requests per emulator minute per "
        f"account = {60 / args.speed:.1f} real s; {args.windows} windows measured after 1 of "
        "ramp-up",
        "",
        table(
            [
                "run",
                "accepted",
                "completed per window",
                "per window",
                "vs one account",
                "429s",
                "failed",
                "generations",
                "completed by account",
            ],
            rows,
        ),
        "",
        f"target two accounts ~2x one account's throughput: {'PASS' if ratio >= 1.8 else 'FAIL'}"
        f" ({ratio:.2f}x)",
        f"target 0 upstream 429s: {'PASS' if no_429 else 'FAIL'}",
        f"target out of credits: 0 client-visible failures: "
        f"{'PASS' if out_of_credits.failed == 0 else 'FAIL'} ({out_of_credits.failed})",
        f"target out of credits: generations created == try-ons accepted: "
        f"{'PASS' if out_of_credits.generations == out_of_credits.submitted else 'FAIL'} "
        f"({out_of_credits.generations} / {out_of_credits.submitted})",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    per_run = args.limit * (args.windows + 2)
    with BenchStack(speed=args.speed, rate_limit=args.limit) as bs:
        bs.start_emulator()
        b = start_second(bs, args.limit)
        outcomes = [
            await measure(bs, b, args, name="one account", pool=["default"], submitted=per_run),
            await measure(
                bs, b, args, name="two accounts", pool=["default", "b"], submitted=2 * per_run
            ),
            await measure(
                bs,
                b,
                args,
                name="two accounts, default out of credits",
                pool=["default", "b"],
                submitted=3 * args.limit,
                default_credits=args.limit // 2,
                wait_all=True,
            ),
        ]
    print(report(outcomes, args))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--windows", type=int, default=3)
    asyncio.run(main(p.parse_args()))
