"""What every benchmark shares: the processes (emulator, gateway, workers) on loopback, a
private Redis database, the emulator's clock, and table printing.

Everything started here is stopped here (`BenchStack.close`, also on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import httpx
from emulator.control_client import EmulatorControl
from PIL import Image
from service.devstack import Stack, free_port, wait_http

EMULATOR_KEY = "gk_bench_emulator_key_0123456789abcdefghijklmnopq"
SECRET = "sk_bench_secret_key_0123456789abcdef"
APP = "bench"
# Our own database index; flushed before and after each run.
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
HOST = "127.0.0.1"


# --- machine -------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {sys.platform}"


# --- statistics and tables -----------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; nan for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    i = min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))
    return s[i]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


# --- inputs --------------------------------------------------------------------------------


def photo_bytes(color: tuple[int, int, int] = (200, 150, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 80), color).save(buf, "JPEG")
    return buf.getvalue()


# --- the emulator --------------------------------------------------------------------------


@dataclass
class EmulatorHandle(EmulatorControl):
    api_key: str = EMULATOR_KEY
    speed: float = 1.0
    # Wall-clock epoch seconds of the emulator clock's origin (see `fit_clock`).
    origin: float = 0.0

    def reset(self, **config: Any) -> None:
        super().reset(**config)
        self.speed = float(config.get("speed", self.speed))
        self.fit_clock()

    def fit_clock(self, samples: int = 15) -> None:
        """Find the wall time of the emulator's origin.

        The emulator reports `now = origin + (real elapsed since origin) * speed` (as an ISO
        date). Each sample brackets one reading between two wall-clock reads; the sample with
        the shortest round trip gives origin = (now - speed * wall) / (1 - speed).
        """
        best: tuple[float, float] | None = None
        with httpx.Client(timeout=5.0) as client:
            for _ in range(samples):
                t0 = time.time()
                body = client.get(f"{self.root}/_emulator/clock").json()
                t1 = time.time()
                rtt = t1 - t0
                if best is None or rtt < best[0]:
                    now = parse_iso(body["now"])
                    speed = float(body["speed"])
                    self.speed = speed
                    wall = (t0 + t1) / 2
                    origin = wall if speed == 1 else (now - speed * wall) / (1 - speed)
                    best = (rtt, origin)
        assert best is not None
        self.origin = best[1]

    def to_wall(self, emulator_iso: str) -> float:
        """An emulator timestamp as wall-clock epoch seconds on this machine."""
        t = parse_iso(emulator_iso)
        return self.origin + (t - self.origin) / self.speed

    def completed_wall(self, generation_id: str) -> float | None:
        """When upstream moved the generation to a terminal state (wall seconds)."""
        gen = self.control("GET", f"generations/{generation_id}")
        for entry in gen.get("history", []):
            if entry["status"] in ("COMPLETED", "FAILED"):
                return self.to_wall(entry["at"])
        return None

    def asset_url(self, name: str = "red-tee.png") -> str:
        return f"{self.root}/_emulator/assets/{name}"


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def counter_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """after - before, for the emulator's counters (nested request maps included)."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            prior = before.get(key, {})
            out[key] = {k: v - prior.get(k, 0) for k, v in value.items() if v - prior.get(k, 0)}
        else:
            out[key] = value - before.get(key, 0)
    return out


# --- processes ------------------------------------------------------------------------------


@dataclass
class BenchStack:
    """The emulator, and gateways and workers started and stopped as a bench needs them."""

    speed: float
    rate_limit: int = 100_000
    credits: int = 1_000_000
    redis_url: str = BENCH_REDIS_URL
    stack: Stack = field(init=False)
    emulator: EmulatorHandle = field(init=False)
    gateway_url: str = ""

    def __post_init__(self) -> None:
        self.stack = Stack(env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.logdir = tempfile.mkdtemp(prefix="tryon-bench-")
        self.stack.tempdirs.append(self.logdir)
        self._logs: list[IO[bytes]] = []

    def spawn(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Like `Stack.spawn`, with the child's output in a log file instead of our table."""
        log = open(os.path.join(self.logdir, f"{name}.log"), "ab")  # noqa: SIM115
        self._logs.append(log)
        self.stack.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env={**self.stack.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            with open(os.path.join(self.logdir, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> BenchStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_emulator(self) -> EmulatorHandle:
        port = free_port()
        self.spawn(
            "emulator",
            "emulator",
            "--port",
            str(port),
            "--api-key",
            EMULATOR_KEY,
            "--speed",
            str(self.speed),
            "--rate-limit",
            str(self.rate_limit),
            "--credits",
            str(self.credits),
        )
        root = f"http://{HOST}:{port}"
        wait_http(f"{root}/_emulator/counters", self.stack.procs["emulator"])
        self.emulator = EmulatorHandle(root=root, speed=self.speed)
        self.emulator.fit_clock()
        return self.emulator

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "REDIS_URL": self.redis_url,
            "GENLOOK_API_KEY": EMULATOR_KEY,
            "GENLOOK_BASE_URL": self.emulator.base_url,
            "GENLOOK_CLOCK_SPEED": str(self.speed),
            "GENLOOK_RATE_LIMIT": str(self.rate_limit),
            "GENLOOK_RATE_WINDOW": str(60.0 / self.speed),
            "GATEWAY_SECRET_KEYS": f"{SECRET}={APP}",
            "WORKER_JOB_TIMEOUT": "60",
            "WORKER_SWEEP_INTERVAL": "30",
            "WORKER_TRYON_DEADLINE": "300",
            "WORKER_JOB_COMPLETION_WAIT": "2",
            # The benches measure the pipeline: repeated identical try-ons must each be
            # generated, not answered from the result cache (bench/shoppers.py turns it on).
            "RESULTS_REUSE_TTL": "0",
        }
        env.update(overrides)
        return env

    def start_gateway(self, **env: str) -> str:
        port = free_port()
        self.spawn("gateway", "serve", "--port", str(port), extra_env=self.env(**env))
        self.gateway_url = f"http://{HOST}:{port}"
        wait_http(f"{self.gateway_url}/healthz", self.stack.procs["gateway"])
        return self.gateway_url

    def start_worker(self, name: str = "worker", **env: str) -> None:
        self.spawn(name, "worker", extra_env=self.env(**env))

    def stop(self, name: str) -> None:
        self.stack.stop(name)

    def pid(self, name: str) -> int:
        return self.stack.procs[name].pid

    def close(self) -> None:
        self.stack.stop_all()
        for log in self._logs:
            log.close()
        flush_redis(self.redis_url)


def flush_redis(url: str = BENCH_REDIS_URL) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_client(url: str = BENCH_REDIS_URL) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(url)


# --- the gateway's API ---------------------------------------------------------------------


def gateway_client(url: str, *, connections: int = 100) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout=60.0,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def upload_photo(api: httpx.AsyncClient, data: bytes) -> str:
    r = await api.post("/v1/images", files={"file": ("p.jpg", data, "image/jpeg")})
    r.raise_for_status()
    image_id: str = r.json()["id"]
    return image_id


async def put_product(api: httpx.AsyncClient, external_id: str, image_url: str) -> None:
    r = await api.put(
        f"/v1/products/{external_id}",
        json={"title": "Red tee", "images": [{"source": {"url": image_url}}]},
    )
    r.raise_for_status()


def tryon_body(image_id: str, external_id: str) -> dict[str, Any]:
    return {
        "products": [{"externalId": external_id}],
        "person": {"image": {"source": {"id": image_id}}},
    }


async def start_tryon(api: httpx.AsyncClient, image_id: str, external_id: str) -> str:
    r = await api.post("/v1/try-ons", json=tryon_body(image_id, external_id))
    if r.status_code != 202:
        raise RuntimeError(f"POST /v1/try-ons: {r.status_code} {r.text}")
    tryon_id: str = r.json()["id"]
    return tryon_id


async def start_tryons(
    api: httpx.AsyncClient, image_id: str, external_id: str, count: int, *, concurrency: int
) -> list[str]:
    """`count` try-ons of one product on one photo, at most `concurrency` requests at a time."""
    sem = asyncio.Semaphore(concurrency)

    async def submit() -> str:
        async with sem:
            return await start_tryon(api, image_id, external_id)

    return await asyncio.gather(*(submit() for _ in range(count)))


TERMINAL = ("completed", "failed", "canceled")


async def wait_terminal(api: httpx.AsyncClient, tryon_id: str, timeout: float = 60) -> str:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"try-on {tryon_id} not terminal after {timeout}s")
        r = await api.get(f"/v1/try-ons/{tryon_id}", params={"wait": min(20, remaining)})
        r.raise_for_status()
        status: str = r.json()["status"]
        if status in TERMINAL:
            return status


async def record_doc(redis: Any, tryon_id: str, prefix: str = "tryon:") -> dict[str, Any]:
    """The try-on's record as the workers wrote it (hash `tryon:t:<id>`, field `doc`)."""
    import msgspec

    raw = await redis.hget(f"{prefix}t:{tryon_id}", "doc")
    if raw is None:
        raise KeyError(tryon_id)
    doc: dict[str, Any] = msgspec.json.decode(raw)
    return doc


def run_subprocess(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
