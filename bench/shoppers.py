"""A sale peak: shoppers at 3x the account's rate limit, with the repeats real shops see.

One workload (seeded, so every integration gets the same clicks at the same times), three
integrations side by side in one run, each on the same emulator (counters reset) and a fresh
Redis database:

- `direct`: the documented direct integration (bench/naive.py: the merchant's backend uploads
  the photo, creates the generation, polls every 2 s), one backend task per click; a shopper
  leaving does not stop it (nothing tells the backend).
- `gateway, cache+deadlines off`: the gateway with RESULTS_REUSE_TTL=0, clicks without
  `deadlineSeconds`.
- `gateway`: the gateway as shipped (result cache on), shoppers passing `deadlineSeconds`.

The workload, in emulator time (`--speed` scales it; the gateway's rate window and the
shoppers' patience are scaled with it): clicks arrive for `--minutes` at `--load` times the
account's limit (`--limit` requests per minute). Each click belongs to a shopper session; a
session uploads one photo, then tries products from a Zipf-skewed catalog (`--catalog`
products, exponent `--zipf`): a shopper who picks a product they already tried is a repeat
(the same product again with the same photo); `--double-click` of the clicks are followed by
the same click 0.3 s later. Every shopper waits `--patience` seconds (60) for each result,
then leaves. With deadlines, a click passes `deadlineSeconds` = patience minus
`--generation-allowance` (a generation's p99, ~22 s on the emulator): a try-on sent at its
deadline still completes while its shopper waits.

Printed per integration: credits spent per result a waiting shopper saw, credits spent on
results nobody waited for (including try-ons still queued at the end that would be sent
later: a backlog without deadlines), p50/p95 time to result for those who stayed (first clicks,
double clicks and repeats separately), upstream calls; and the ratios to `direct`.

    uv run python -m bench.shoppers [--speed 5] [--minutes 4] [--limit 100] [--load 3]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench._common import (
    BenchStack,
    flush_redis,
    gateway_client,
    machine,
    pct,
    photo_bytes,
    put_product,
    table,
    upload_photo,
)
from bench.naive import NaiveClient

DOUBLE_CLICK_GAP = 0.3  # emulator seconds between a click and its double


@dataclass(frozen=True)
class Click:
    at: float  # emulator seconds from the start
    shopper: int
    product: int
    kind: str  # "first", "double" (a double click), "repeat" (same product and photo again)


def workload(args: argparse.Namespace) -> list[Click]:
    """The clicks of the sale peak, seeded: the same list for every integration. Sessions
    arrive at random (Poisson) so that clicks come at `--load` times the account's limit; a
    session is 1-5 try-ons, 20-60 s apart (a shopper browsing between them); the peak ends
    after `--minutes`, and the clicks sessions would make after it with it."""
    rng = random.Random(args.seed)
    weights = [1 / (rank + 1) ** args.zipf for rank in range(args.catalog)]
    cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
    sessions_per_minute = args.limit * args.load / 3.0  # 3 try-ons per session on average
    clicks: list[Click] = []
    start = 0.0
    shopper = 0
    while True:
        start += rng.expovariate(sessions_per_minute / 60.0)
        if start >= args.minutes * 60:
            break
        shopper += 1
        tried: set[int] = set()
        at = start
        for _ in range(rng.choice((1, 2, 3, 4, 5))):
            product = bisect.bisect_left(cumulative, rng.random() * cumulative[-1])
            clicks.append(Click(at, shopper, product, "repeat" if product in tried else "first"))
            tried.add(product)
            if rng.random() < args.double_click:
                clicks.append(Click(at + DOUBLE_CLICK_GAP, shopper, product, "double"))
            at += rng.uniform(20, 60)
    return sorted((c for c in clicks if c.at < args.minutes * 60), key=lambda c: c.at)


@dataclass
class Seen:
    """What one click's shopper got: the time to result if they saw it while waiting, and
    which generation it was (so results are counted once however many clicks saw them)."""

    click: Click
    seconds: float | None = None  # emulator seconds, None: left without a result
    real: float | None = None  # the same in wall seconds (a cache hit's HTTP time is not scaled)
    result: str | None = None
    # A repeat whose shopper had already seen this product's result on this photo when they
    # clicked again: what the result cache is for.
    of_seen: bool = False


@dataclass
class Outcome:
    name: str
    seen: list[Seen]
    credits: int
    backlog: int  # accepted try-ons still to be sent with no deadline: credits to come
    calls: int
    rate_limited: int
    extra: dict[str, Any] = field(default_factory=dict)

    def results_seen(self) -> int:
        return len({s.result for s in self.seen if s.seconds is not None})

    def wasted(self) -> int:
        return self.credits + self.backlog - self.results_seen()

    def times(self, kind: str | None = None, *, real: bool = False) -> list[float]:
        return [
            (s.real if real else s.seconds) or 0.0
            for s in self.seen
            if s.seconds is not None
            and (kind is None or s.click.kind == kind or (kind == "seen" and s.of_seen))
        ]


async def _pace(start: float, at: float, speed: float) -> None:
    await asyncio.sleep(max(0.0, start + at / speed - time.time()))


# --- direct integration ----------------------------------------------------------------


async def run_direct(stack: BenchStack, clicks: list[Click], args: argparse.Namespace) -> Outcome:
    emulator = stack.emulator
    client = NaiveClient(
        emulator.base_url,
        emulator.api_key,
        speed=args.speed,
        product_image_url=emulator.asset_url(),
        connections=200,
    )
    photos = {c.shopper: photo_bytes(_color(c.shopper)) for c in clicks}
    before = emulator.counters()
    seen = [Seen(c) for c in clicks]
    served: set[tuple[int, int]] = set()
    start = time.time()
    patience = args.patience / args.speed
    created = 0

    async def shop(s: Seen) -> None:
        nonlocal created
        await _pace(start, s.click.at, args.speed)
        clicked = time.time()
        s.of_seen = (s.click.shopper, s.click.product) in served
        result = await client.tryon(photos[s.click.shopper], f"p{s.click.product}")
        created += 1
        if result.status == "completed" and result.detected_at - clicked <= patience:
            s.real = result.detected_at - clicked
            s.seconds = s.real * args.speed
            s.result = result.generation_id
            served.add((s.click.shopper, s.click.product))

    tasks = [asyncio.create_task(shop(s)) for s in seen]
    await asyncio.wait(tasks, timeout=_horizon(args))
    # Backend tasks still retrying their upload or create would each spend a credit later.
    pending = sum(1 for t in tasks if not t.done())
    after = emulator.counters()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    not_created = max(0, pending - (after["generationsCreated"] - before["generationsCreated"]))
    return _outcome("direct", seen, before, after, backlog=min(pending, not_created))


def _color(shopper: int) -> tuple[int, int, int]:
    rng = random.Random(shopper)
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _horizon(args: argparse.Namespace) -> float:
    """Real seconds from the first click until the last shopper has left, plus a margin for
    generations sent just before their deadline to finish."""
    return float(args.minutes * 60 + args.patience + 30) / float(args.speed)


def _outcome(
    name: str,
    seen: list[Seen],
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    backlog: int,
) -> Outcome:
    calls = sum(after["requests"].values()) - sum(before["requests"].values())
    spent = after["creditsSpent"] - after["creditsRefunded"]
    spent -= before["creditsSpent"] - before["creditsRefunded"]
    return Outcome(
        name,
        seen,
        credits=spent,
        backlog=backlog,
        calls=calls,
        rate_limited=after.get("rateLimited", 0) - before.get("rateLimited", 0),
    )


# --- through the gateway -----------------------------------------------------------------


async def run_gateway(
    stack: BenchStack, clicks: list[Click], args: argparse.Namespace, *, shipped: bool
) -> Outcome:
    # As shipped: the result cache on with its default TTL (the benches' stack turns it off).
    env = {"GENLOOK_RATE_LIMIT": str(args.limit), "RESULTS_REUSE_TTL": "86400" if shipped else "0"}
    stack.start_gateway(**env)
    stack.start_worker(**env)
    emulator = stack.emulator
    api = gateway_client(stack.gateway_url, connections=400)
    try:
        for product in {c.product for c in clicks}:
            await put_product(api, f"p{product}", emulator.asset_url())
        before = emulator.counters()
        seen = [Seen(c) for c in clicks]
        images: dict[int, asyncio.Task[str]] = {}
        start = time.time()
        patience = args.patience / args.speed
        deadline = max(1.0, (args.patience - args.generation_allowance) / args.speed)
        accepted: list[str] = []
        served: set[tuple[int, int]] = set()

        async def shop(s: Seen) -> None:
            c = s.click
            await _pace(start, c.at, args.speed)
            clicked = time.time()
            s.of_seen = (c.shopper, c.product) in served
            if c.shopper not in images:  # the session's photo, uploaded once
                images[c.shopper] = asyncio.create_task(
                    upload_photo(api, photo_bytes(_color(c.shopper)))
                )
            body: dict[str, Any] = {
                "products": [{"externalId": f"p{c.product}"}],
                "person": {"image": {"source": {"id": await images[c.shopper]}}},
            }
            if shipped:
                body["deadlineSeconds"] = deadline
            r = await api.post("/v1/try-ons", json=body)
            r.raise_for_status()
            view = r.json()
            accepted.append(view["id"])
            while view["status"] not in ("completed", "failed", "canceled"):
                left = clicked + patience - time.time()
                if left <= 0:
                    return
                got = await api.get(f"/v1/try-ons/{view['id']}", params={"wait": min(left, 20)})
                view = got.json()
            took = time.time() - clicked
            if args.debug:
                print(c.kind, view["status"], round(took, 2), view.get("error"), flush=True)
            if view["status"] == "completed" and took <= patience:
                s.real = took
                s.seconds = took * args.speed
                s.result = view.get("reusedFrom", view["id"])
                served.add((c.shopper, c.product))

        tasks = [asyncio.create_task(shop(s)) for s in seen]
        await asyncio.gather(*tasks)
        # Until the last shopper left and what was sent before its deadline completed.
        await asyncio.sleep(max(0.0, start + _horizon(args) - time.time()))
        after = emulator.counters()
        backlog = await _unsent(api, accepted, deadline if shipped else None)
        if not any(s.seconds is not None for s in seen):  # explain a run that served nobody
            print(stack.log_tail("gateway"), stack.log_tail("worker"), sep="\n")
        return _outcome(
            "gateway" if shipped else "gateway, cache+deadlines off",
            seen,
            before,
            after,
            backlog=backlog,
        )
    finally:
        await api.aclose()
        stack.stop("worker")
        stack.stop("gateway")
        flush_redis(stack.redis_url)


async def _unsent(api: httpx.AsyncClient, ids: list[str], deadline: float | None) -> int:
    """Try-ons still to be sent at the end: a credit to come each. Not those past their
    `deadline` (seconds from acceptance): whenever their job runs, they end DEADLINE_EXCEEDED
    unsent, spending nothing (a create already in flight is in the emulator's count)."""
    sem = asyncio.Semaphore(50)
    now = time.time()

    async def to_send(tryon_id: str) -> bool:
        async with sem:
            view = (await api.get(f"/v1/try-ons/{tryon_id}")).json()
        if view["status"] not in ("queued", "submitting"):
            return False
        created = datetime.fromisoformat(view["createdAt"].replace("Z", "+00:00")).timestamp()
        return deadline is None or now < created + deadline

    return sum(await asyncio.gather(*(to_send(i) for i in ids)))


# --- the table ------------------------------------------------------------------------


def report(outcomes: list[Outcome], clicks: list[Click], args: argparse.Namespace) -> str:
    kinds = Counter(c.kind for c in clicks)
    lines = [
        f"machine: {machine()}",
        f"emulator speed {args.speed}, account limit {args.limit}/min, load {args.load}x for "
        f"{args.minutes} min: {len(clicks)} clicks by {len({c.shopper for c in clicks})} "
        f"shoppers over {args.catalog} products (Zipf {args.zipf}); "
        f"first {kinds['first']}, repeats {kinds['repeat']}, double clicks {kinds['double']} "
        f"(repeat rate {(kinds['repeat'] + kinds['double']) / len(clicks):.0%}); "
        f"patience {args.patience:.0f} s, deadlineSeconds "
        f"{args.patience - args.generation_allowance:.0f} s (scaled)",
        "",
    ]
    rows = []
    for o in outcomes:
        seen = o.results_seen()
        rows.append(
            [
                o.name,
                o.credits,
                o.backlog,
                seen,
                (o.credits + o.backlog) / seen if seen else float("nan"),
                o.wasted(),
                len(o.times()),
                pct(o.times("first"), 0.5),
                pct(o.times("first"), 0.95),
                pct(o.times("double"), 0.95),
                pct(o.times("repeat"), 0.95),
                len(o.times("seen")),
                pct(o.times("seen", real=True), 0.5) * 1000,
                pct(o.times("seen", real=True), 0.95) * 1000,
                o.calls,
                o.rate_limited,
            ]
        )
    lines.append(
        table(
            [
                "integration",
                "credits",
                "+ backlog",
                "results seen",
                "credits/seen",
                "wasted",
                "clicks served",
                "first p50 s",
                "first p95 s",
                "double p95 s",
                "repeat p95 s",
                "repeats of a seen result",
                "their p50 ms (real)",
                "their p95 ms (real)",
                "upstream calls",
                "429s",
            ],
            rows,
        )
    )
    direct = outcomes[0]
    total = direct.credits + direct.backlog
    for o in outcomes[1:] if direct.name == "direct" and total else []:
        mine = o.credits + o.backlog
        lines.append(
            f"{o.name}: credits {mine / total:.2f}x direct ({1 - mine / total:.0%} fewer), "
            f"upstream calls {o.calls / direct.calls:.2f}x, clicks served "
            f"{len(o.times()) / max(1, len(direct.times())):.2f}x"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    clicks = workload(args)
    flush_redis()
    with BenchStack(speed=args.speed, rate_limit=args.limit) as stack:
        emulator = stack.start_emulator()
        outcomes = []
        for run in args.runs.split(","):
            emulator.reset(speed=args.speed, rateLimit=args.limit, credits=stack.credits)
            if run == "direct":
                outcomes.append(await run_direct(stack, clicks, args))
            else:
                outcomes.append(await run_gateway(stack, clicks, args, shipped=run == "gateway"))
            print(f"{outcomes[-1].name}: done", flush=True)
    print(report(outcomes, clicks, args))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--speed", type=float, default=5.0)
    p.add_argument("--minutes", type=float, default=4.0, help="emulator minutes of clicks")
    p.add_argument("--limit", type=int, default=100, help="the account's requests per minute")
    p.add_argument("--load", type=float, default=3.0, help="clicks per minute / limit")
    p.add_argument("--catalog", type=int, default=60)
    p.add_argument("--zipf", type=float, default=1.1)
    p.add_argument("--double-click", type=float, default=0.08)
    p.add_argument("--patience", type=float, default=60.0, help="emulator seconds")
    p.add_argument("--generation-allowance", type=float, default=25.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--debug", action="store_true")
    p.add_argument("--runs", default="direct,off,gateway", help="which integrations, in order")
    asyncio.run(main(p.parse_args()))
