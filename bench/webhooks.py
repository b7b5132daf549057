"""Webhook delivery: how soon after completion the first attempt arrives, how many deliveries
one worker makes per second, and what the receiver itself can take.

One run, all on 127.0.0.1, Redis db 13 (`BENCH_WEBHOOK_REDIS_URL`; flushed before and after):

1. First-attempt latency after completion. N try-ons through the gateway (emulator at --speed,
   GENLOOK_WAIT_STRATEGY=sync, one worker), one endpoint registered with the default event types,
   pointing at the receiver. Latency = when the receiver got the `tryon.completed` request
   (wall clock, taken when the ASGI app is called, i.e. headers parsed) minus the try-on
   record's `completed_at` (Redis hash `tryon:t:<id>`, field `doc`). Same clock, same machine.
2. Delivery throughput of ONE worker. Events are written straight into the outbox stream with
   the fields the try-on store's update script writes (id, type, app, tryon, callback, body;
   the body is a real `tryon.completed` body captured in part 1, each event for its own try-on
   id so per-try-on ordering does not serialize them). So the whole delivery engine is measured:
   dispatcher XREADGROUP, endpoint lookup, delivery record, first attempt (order check, slot,
   signing, HTTP POST, attempt log, settle) -- everything but the try-on state change itself.
   Not `POST .../test`: that path goes through the gateway and an arq job per event, which is
   the resend path, not the first-attempt path. Run at the default per-endpoint concurrency
   (10) and with WEBHOOK_ENDPOINT_CONCURRENCY raised to the dispatcher's in-flight cap (200).
   Rate = events / (last arrival - first XADD); "steady" = the 10th..90th percentile arrivals.
3. Baseline: the receiver's own capacity, measured in the same run by wrk (or bench/loadgen.py
   without wrk) posting the same body with the same signed headers straight to it, at the same
   connection counts.

The receiver is uvicorn (httptools, uvloop, one process, access log off) serving a raw ASGI app
that answers 200 "ok" and appends (arrival time, webhook-id[, body]) to an in-memory list read
back with GET /_arrivals.

    uv run python -m bench.webhooks [--count 200] [--speed 100] [--events 2000]
    uv run python -m bench.webhooks receiver --port P     # the receiver alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
from service.devstack import free_port, wait_http

from bench._common import (
    HOST,
    BenchStack,
    flush_redis,
    gateway_client,
    machine,
    pct,
    photo_bytes,
    put_product,
    record_doc,
    redis_client,
    run_subprocess,
    start_tryon,
    table,
    upload_photo,
    wait_terminal,
)

REDIS_URL = os.environ.get("BENCH_WEBHOOK_REDIS_URL", "redis://127.0.0.1:6379/13")
PREFIX = "tryon:"
DURATION_MEDIAN = 10.0
DURATION_SIGMA = 0.35
WEBHOOK_ENV = {"WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1"}


# --- the receiver (its own process) ----------------------------------------------------------


def receiver_app() -> Any:
    arrivals: list[tuple[float, str, bytes | None]] = []
    state = {"bodies": False}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        now = time.time()
        method, path = scope["method"], scope["path"]
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = b"ok"
        ctype = b"text/plain"
        if method == "POST" and path.startswith("/hook"):
            wid = ""
            for name, value in scope["headers"]:
                if name == b"webhook-id":
                    wid = value.decode()
                    break
            arrivals.append((now, wid, body if state["bodies"] else None))
        elif path == "/_arrivals":
            since = int(scope["query_string"].decode().partition("=")[2] or 0)
            answer = json.dumps(
                [[t, w, b.decode() if b else None] for t, w, b in arrivals[since:]]
            ).encode()
            ctype = b"application/json"
        elif path == "/_count":
            answer = str(len(arrivals)).encode()
        elif path == "/_reset":
            arrivals.clear()
            state["bodies"] = scope["query_string"] == b"bodies=1"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", ctype), (b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def serve_receiver(port: int) -> None:
    import uvicorn

    uvicorn.run(
        receiver_app(),
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


RECEIVER_WHAT = (
    "uvicorn (httptools, uvloop, 1 process) + raw ASGI app: 200 'ok', arrivals in memory"
)


class ReceiverHandle:
    def __init__(self, bs: BenchStack) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        log = open(os.path.join(bs.logdir, "receiver.log"), "ab")  # noqa: SIM115
        bs._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.webhooks", "receiver", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        bs.stack.procs["receiver"] = proc
        self.pid = proc.pid
        wait_http(f"{self.url}/_count", proc)
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def reset(self, bodies: bool = False) -> None:
        self.client.post("/_reset", params={"bodies": 1} if bodies else {"bodies": 0})

    def count(self) -> int:
        return int(self.client.get("/_count").text)

    def arrivals(self) -> list[tuple[float, str, str | None]]:
        return [tuple(a) for a in self.client.get("/_arrivals").json()]

    async def wait_count(self, n: int, timeout: float) -> bool:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url) as c:
            while time.monotonic() < deadline:
                if int((await c.get("/_count")).text) >= n:
                    return True
                await asyncio.sleep(0.05)
        return False


# --- helpers ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def redis_commands(redis: Any) -> int:
    info = await redis.info("stats")
    return int(info["total_commands_processed"])


async def wait_worker_ready(redis: Any, timeout: float = 20) -> None:  # noqa: ASYNC109
    """A dispatcher is blocked in XREADGROUP on our database (only one worker runs at a time;
    a blocked XREADGROUP on an empty stream does not register its consumer in Redis 7.0, so
    CLIENT LIST is what shows it)."""
    db = str(redis.connection_pool.connection_kwargs.get("db", 0))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clients = await redis.client_list()
        if any(c.get("db") == db and c.get("cmd") == "xreadgroup" for c in clients):
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("worker's dispatcher did not start")


async def _bounded(concurrency: int, count: int, one: Any) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def run(i: int) -> Any:
        async with sem:
            return await one(i)

    return list(await asyncio.gather(*(run(i) for i in range(count))))


# --- 1. latency ------------------------------------------------------------------------------


@dataclass
class Latency:
    label: str
    count: int
    delivered: int
    duplicates: int
    ms: list[float]
    worker_cpu_pct: float  # of one core, over the phase
    machine_cpu_pct: float  # of all cores


async def setup_endpoint(bs: BenchStack, rcv: ReceiverHandle) -> tuple[str, str, str]:
    async with gateway_client(bs.gateway_url) as api:
        r = await api.post("/v1/webhook-endpoints", json={"url": f"{rcv.url}/hook"})
        if r.status_code != 201:
            raise RuntimeError(f"register endpoint: {r.status_code} {r.text}")
        endpoint = r.json()
        image_id = await upload_photo(api, photo_bytes())
        await put_product(api, "tee", bs.emulator.asset_url())
        rcv.reset(bodies=True)
        warm = await start_tryon(api, image_id, "tee")
        await wait_terminal(api, warm, timeout=30)
    if not await rcv.wait_count(1, 10):
        raise RuntimeError(f"warm-up deliveries did not arrive:\n{bs.log_tail('worker')}")
    return endpoint["id"], endpoint["secret"], image_id


async def measure_latency(
    bs: BenchStack, rcv: ReceiverHandle, image_id: str, count: int, concurrency: int
) -> Latency:
    redis = redis_client(bs.redis_url)
    rcv.reset(bodies=True)
    pid = bs.pid("worker")
    cpu0, busy0, t0 = cpu_seconds(pid), machine_busy(), time.monotonic()
    try:
        async with gateway_client(bs.gateway_url) as api:

            async def one(_: int) -> str:
                tryon_id = await start_tryon(api, image_id, "tee")
                await wait_terminal(api, tryon_id, timeout=60)
                return tryon_id

            ids = await asyncio.wait_for(_bounded(concurrency, count, one), timeout=90)
        cpu1, busy1, t1 = cpu_seconds(pid), machine_busy(), time.monotonic()
        # One tryon.completed each (tryon.processing is not a default event type): wait for
        # that many, then a moment for stragglers.
        await rcv.wait_count(count, 15)
        await asyncio.sleep(0.5)
        completed_at: dict[str, float] = {}
        for tryon_id in ids:
            doc = await record_doc(redis, tryon_id, PREFIX)
            if doc.get("status") == "completed" and doc.get("completed_at"):
                completed_at[tryon_id] = float(doc["completed_at"])
        ms: list[float] = []
        seen: set[str] = set()
        duplicates = 0
        for t, wid, body in rcv.arrivals():
            if body is None or '"tryon.completed"' not in body:
                continue
            if wid in seen:
                duplicates += 1
                continue
            seen.add(wid)
            tid = json.loads(body)["data"]["id"]
            if tid in completed_at:
                ms.append((t - completed_at[tid]) * 1000)
    finally:
        await redis.aclose()
    return Latency(
        f"{concurrency} in flight",
        count,
        len(ms),
        duplicates,
        ms,
        worker_cpu_pct=100 * (cpu1 - cpu0) / (t1 - t0),
        machine_cpu_pct=100 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
    )


# --- 2. throughput ---------------------------------------------------------------------------


@dataclass
class Throughput:
    label: str
    concurrency: int
    events: int
    delivered: int
    unique: int
    seconds: float
    steady_rps: float
    worker_cpu_s: float
    redis_cmds: int

    @property
    def rps(self) -> float:
        return self.delivered / self.seconds if self.seconds else float("nan")


async def measure_throughput(
    bs: BenchStack, rcv: ReceiverHandle, body: str, *, events: int, concurrency: int, run: int
) -> Throughput:
    env = {**WEBHOOK_ENV, "GENLOOK_WAIT_STRATEGY": "sync"}
    if concurrency != 10:
        env["WEBHOOK_ENDPOINT_CONCURRENCY"] = str(concurrency)
    redis = redis_client(bs.redis_url)
    bs.start_worker(**env)
    try:
        await wait_worker_ready(redis)
        rcv.reset()
        pid = bs.pid("worker")
        cpu0, cmds0 = cpu_seconds(pid), await redis_commands(redis)
        t0 = time.time()
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(events):
                pipe.xadd(
                    f"{PREFIX}outbox",
                    {
                        "id": f"evt_bench{run}_{i}_completed",
                        "type": "tryon.completed",
                        "app": "bench",
                        "tryon": f"tob{run}_{i}",
                        "callback": "",
                        "body": body,
                    },
                )
            await pipe.execute()
        await rcv.wait_count(events, 60)
        cpu1, cmds1 = cpu_seconds(pid), await redis_commands(redis)
        times = sorted(t for t, _, _ in rcv.arrivals())
        ids = {w for _, w, _ in rcv.arrivals()}
    finally:
        await redis.aclose()
        bs.stop("worker")
    n = len(times)
    lo, hi = pct(times, 0.1), pct(times, 0.9)
    steady = (0.8 * n) / (hi - lo) if n > 10 and hi > lo else float("nan")
    return Throughput(
        label=f"ours, 1 worker, endpoint concurrency {concurrency}",
        concurrency=concurrency,
        events=events,
        delivered=n,
        unique=len(ids),
        seconds=(times[-1] - t0) if times else float("nan"),
        steady_rps=steady,
        worker_cpu_s=cpu1 - cpu0,
        redis_cmds=cmds1 - cmds0,
    )


# --- 3. the receiver's own capacity ----------------------------------------------------------


@dataclass
class Capacity:
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    tool: str


def measure_receiver(
    bs: BenchStack, rcv: ReceiverHandle, body: str, *, secret: str, connections: int, seconds: float
) -> Capacity:
    from service.webhooks import signing

    raw = body.encode()
    headers = {
        **signing.headers("msg_" + "0" * 26, int(time.time()), raw, [secret]),
        "content-type": "application/json",
        "user-agent": "tryon-gateway-webhooks/1",
    }
    rcv.reset()
    url = f"{rcv.url}/hook"
    wrk = shutil.which("wrk")
    if wrk:
        script = os.path.join(bs.logdir, "hook.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\n')
            f.write(f"wrk.body = {json.dumps(body)}\n")
            for k, v in headers.items():
                f.write(f'wrk.headers["{k}"] = {json.dumps(v)}\n')
        cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script, url]
        out = run_subprocess(cmd, timeout=seconds + 30).stdout
        rps = p50 = p99 = float("nan")
        for line in out.splitlines():
            parts = line.split()
            if line.startswith("Requests/sec:"):
                rps = float(parts[1])
            elif len(parts) == 2 and parts[0] in ("50%", "99%"):
                v = parts[1]
                ms = (
                    float(v[:-2]) if v.endswith("ms") else
                    float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
                )  # fmt: skip
                if parts[0] == "50%":
                    p50 = ms
                else:
                    p99 = ms
        tool = "wrk -t1"
    else:
        cmd = [
            sys.executable, "-m", "bench.loadgen", url, "--method", "POST", "--body", body,
            "--connections", str(connections), "--duration", str(seconds),
        ]  # fmt: skip
        for k, v in headers.items():
            cmd += ["--header", f"{k}:{v}"]
        result = json.loads(run_subprocess(cmd, timeout=seconds + 30).stdout.splitlines()[-1])
        rps, p50, p99 = result["rps"], result["p50_ms"], result["p99_ms"]
        tool = "bench/loadgen.py (httpx; a lower bound)"
    rcv.reset()
    return Capacity(connections, rps, p50, p99, tool)


# --- the run ---------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    flush_redis(REDIS_URL)
    t_start = time.monotonic()
    with BenchStack(speed=args.speed, redis_url=REDIS_URL) as bs:
        rcv = ReceiverHandle(bs)
        bs.start_emulator()
        bs.emulator.reset(
            speed=args.speed,
            rateLimit=bs.rate_limit,
            credits=bs.credits,
            durationMedian=DURATION_MEDIAN,
            durationSigma=DURATION_SIGMA,
        )
        env = {**WEBHOOK_ENV, "GENLOOK_WAIT_STRATEGY": "sync"}
        bs.start_gateway(**env)
        bs.start_worker(**env)
        _, secret, image_id = await setup_endpoint(bs, rcv)
        body = next(b for _, _, b in rcv.arrivals() if b and '"tryon.completed"' in b)

        latencies = [
            await measure_latency(bs, rcv, image_id, min(args.count, 50), 1),
            await measure_latency(bs, rcv, image_id, args.count, args.concurrency),
        ]
        bs.stop("worker")
        bs.stop("gateway")

        # Alternate ours and the receiver's capacity at each concurrency.
        pairs: list[tuple[Throughput, Capacity]] = []
        for run, conc in enumerate(args.endpoint_concurrency):
            ours = await measure_throughput(
                bs, rcv, body, events=args.events, concurrency=conc, run=run
            )
            base = measure_receiver(
                bs, rcv, body, secret=secret, connections=conc, seconds=args.wrk_seconds
            )
            pairs.append((ours, base))
        rcv.client.close()
    flush_redis(REDIS_URL)
    elapsed = time.monotonic() - t_start
    print(report(args, latencies, pairs, body, elapsed))


def report(
    args: argparse.Namespace,
    latencies: list[Latency],
    pairs: list[tuple[Throughput, Capacity]],
    body: str,
    elapsed: float,
) -> str:
    out = [
        f"# Webhook delivery -- {machine()}",
        f"receiver: {RECEIVER_WHAT}; baseline load: {pairs[0][1].tool if pairs else '-'}",
        f"emulator speed {args.speed:g}, sync strategy, 1 worker, 1 endpoint (default event types);"
        f" body {len(body)} bytes; run took {elapsed:.0f} s",
        "",
        "## 1. First attempt of tryon.completed after the record's completed_at",
        "",
        table(
            [
                "try-ons in flight",
                "try-ons",
                "delivered",
                "dupes",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "worker CPU %",
                "machine CPU %",
            ],
            [
                [
                    lat.label,
                    lat.count,
                    lat.delivered,
                    lat.duplicates,
                    pct(lat.ms, 0.5),
                    pct(lat.ms, 0.95),
                    pct(lat.ms, 0.99),
                    max(lat.ms, default=float("nan")),
                    lat.worker_cpu_pct,
                    lat.machine_cpu_pct,
                ]
                for lat in latencies
            ],
        ),
        "",
        f"## 2./3. Deliveries/s of one worker ({args.events} events XADDed to the outbox at once)"
        " vs the receiver's own capacity (same body and headers, same connection count)",
        "",
        table(
            [
                "endpoint concurrency",
                "delivered",
                "dupes",
                "seconds",
                "ours/s",
                "steady/s",
                "receiver/s",
                "ours/receiver",
                "worker CPU ms/dlv",
                "Redis cmds/dlv (server-wide)",
                "receiver p50/p99 ms",
            ],
            [
                [
                    o.concurrency,
                    f"{o.delivered}/{o.events}",
                    o.delivered - o.unique,
                    o.seconds,
                    o.rps,
                    o.steady_rps,
                    b.rps,
                    f"{100 * o.rps / b.rps:.1f} %",
                    1000 * o.worker_cpu_s / max(1, o.delivered),
                    o.redis_cmds / max(1, o.delivered),
                    f"{b.p50_ms:.2f} / {b.p99_ms:.2f}",
                ]
                for o, b in pairs
            ],
        ),
        "",
    ]
    loaded = latencies[-1]
    p99 = pct(loaded.ms, 0.99)
    ok = p99 < 100 and loaded.delivered == loaded.count
    out.append(
        f"target first-attempt p99 < 100 ms ({loaded.label}): {'PASS' if ok else 'FAIL'} "
        f"({p99:.1f} ms, {loaded.delivered}/{loaded.count} delivered)"
    )
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "receiver":
        rp = argparse.ArgumentParser()
        rp.add_argument("receiver")
        rp.add_argument("--port", type=int, required=True)
        serve_receiver(rp.parse_args().port)
        sys.exit(0)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=200, help="try-ons for the latency part")
    p.add_argument("--concurrency", type=int, default=20, help="try-ons in flight")
    p.add_argument("--speed", type=float, default=100.0)
    p.add_argument("--events", type=int, default=2000, help="outbox events for throughput")
    p.add_argument(
        "--endpoint-concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 200],
        help="WEBHOOK_ENDPOINT_CONCURRENCY values, comma separated",
    )
    p.add_argument("--wrk-seconds", type=float, default=5.0)
    asyncio.run(main(p.parse_args()))
