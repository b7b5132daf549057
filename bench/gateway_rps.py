"""Requests per second on the gateway's hot paths, next to a bare Litestar app.

`POST /v1/try-ons` (authenticate, decode, resolve the product and the photo in Redis, one atomic
accept+enqueue script) and `GET /v1/try-ons/{id}` (authenticate, one HGET, encode) on our
gateway, against `bench/bare_app.py` (same routes, a handler returning a small JSON), each served
by one uvicorn process with the same settings, measured alternately in the same run. The load
comes from a separate process: `wrk` (a Lua script for the POST) or, if wrk is missing, the
slower `bench/loadgen.py`. No worker runs during the measurements: the POST path is measured on
its own (accepted try-ons stay queued). The GET reads a completed try-on (a worker completed it
before the measurements, then was stopped).

Then the POST path is profiled with py-spy (`uv run --with py-spy`) for a few seconds under the
same load, and the top functions (inclusive and self time) are printed.

    uv run python -m bench.gateway_rps [--duration 8] [--rounds 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

from service.devstack import free_port, wait_http

from bench._common import (
    SECRET,
    BenchStack,
    flush_redis,
    gateway_client,
    machine,
    photo_bytes,
    put_product,
    start_tryon,
    table,
    tryon_body,
    upload_photo,
    wait_terminal,
)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    server_cpu: float  # cores used by the server process during the run


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip())
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return float(m.group(1)) * scale


def _cpu_us(loads: list[Load]) -> float:
    """Median server CPU microseconds per request: what limits req/s once the server is the
    bottleneck, and less sensitive than req/s to other processes taking the cores."""
    return statistics.median(1e6 * x.server_cpu / x.rps for x in loads)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


class LoadGen:
    def __init__(self, connections: int, workdir: str) -> None:
        self.connections = connections
        self.wrk = shutil.which("wrk")
        self.workdir = workdir
        self.tool = "wrk" if self.wrk else "bench/loadgen.py (httpx)"

    def _post_script(self, body: str) -> str:
        path = os.path.join(self.workdir, "post.lua")
        with open(path, "w") as f:
            f.write(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(body)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {SECRET}"\n'
            )
        return path

    def run(self, url: str, method: str, body: str, seconds: float, server_pid: int) -> Load:
        cpu0, t0 = _cpu_seconds(server_pid), time.monotonic()
        if self.wrk:
            cmd = [self.wrk, "-t1", f"-c{self.connections}", f"-d{seconds:g}s", "--latency"]
            if method == "POST":
                cmd += ["-s", self._post_script(body)]
            else:
                cmd += ["-H", f"Authorization: Bearer {SECRET}"]
            out = subprocess.run(
                [*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=True
            ).stdout
            load = self._parse_wrk(out)
        else:
            cmd = [
                sys.executable,
                "-m",
                "bench.loadgen",
                url,
                "--method",
                method,
                "--connections",
                str(self.connections),
                "--duration",
                str(seconds),
                "--header",
                f"Authorization:Bearer {SECRET}",
            ]
            if body:
                cmd += ["--body", body]
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=seconds + 30, check=True
            ).stdout
            d = json.loads(out.strip().splitlines()[-1])
            load = Load(d["rps"], d["p50_ms"], d["p99_ms"], d["errors"], d["requests"], 0.0)
        load.server_cpu = (_cpu_seconds(server_pid) - cpu0) / (time.monotonic() - t0)
        return load

    @staticmethod
    def _parse_wrk(out: str) -> Load:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
        errors = 0
        if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
            errors += int(m.group(1))
        socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
        if m := re.search(socket_errors, out):
            errors += sum(int(x) for x in m.groups())
        return Load(rps, _ms(lat.get("50", "")), _ms(lat.get("99", "")), errors, requests, 0.0)


def _package(frame: str) -> str:
    """`func (litestar/routes/http.py)` -> `litestar`; our own code by top-level package."""
    m = re.search(r"\(([^)]*)\)$", frame)
    path = m.group(1) if m else ""
    if path.startswith("<") or "/" not in path:
        return "python (stdlib/runpy)" if path else "?"
    return path.split("/", 1)[0]


@dataclass
class Profile:
    requests: int
    samples: int
    rate: int
    self_by_package: Counter[str]
    self_by_function: Counter[str]
    inclusive_ours: Counter[str]

    def us_per_request(self, samples: int) -> float:
        return 1e6 * samples / self.rate / max(1, self.requests)


def _collapse(raw: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """py-spy raw (collapsed) stacks -> self samples per package and per function, and
    inclusive samples of our own functions (service/, workers/)."""
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        by_package[_package(frames[-1])] += n
        by_function[frames[-1]] += n
        for f in set(frames):
            if re.search(r"\((service|workers)/", f) and "service/cli.py" not in f:
                ours[f] += n
    return by_package, by_function, ours, total


def profile(  # noqa: PLR0917
    url: str, method: str, body: str, pid: int, gen: LoadGen, seconds: float, workdir: str
) -> Profile | str:
    """Sample the server with py-spy while `gen` loads it; CPU attributed per request."""
    rate = 250
    out_path = os.path.join(workdir, f"profile-{pid}-{method}.txt")
    # An installed py-spy, else uv's ephemeral one; neither: no profile, the figures stand.
    runner = ["py-spy"] if shutil.which("py-spy") else ["uv", "run", "--with", "py-spy", "py-spy"]
    if not shutil.which(runner[0]):
        return "(no py-spy and no uv on PATH: not profiled)"
    spy = subprocess.Popen(
        [
            *runner,
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds) + 1),
            "-r",
            str(rate),
            "--format",
            "raw",
            "-o",
            out_path,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = ""
    try:
        time.sleep(1.0)  # py-spy attaching
        load = gen.run(url, method, body, seconds, pid)
        _, err = spy.communicate(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not os.path.exists(out_path):
        return f"(py-spy produced no profile: {err.strip()[-300:]})"
    with open(out_path) as f:
        by_package, by_function, ours, total = _collapse(f.read())
    # py-spy runs ~1 s longer than the load, but skips idle time: the samples cover the load.
    return Profile(
        requests=load.requests,
        samples=total,
        rate=rate,
        self_by_package=by_package,
        self_by_function=by_function,
        inclusive_ours=ours,
    )


def profile_report(title: str, ours: Profile | str, bare: Profile | str) -> str:
    if isinstance(ours, str) or isinstance(bare, str):
        return f"{title}: {ours if isinstance(ours, str) else bare}"
    packages = sorted(
        set(ours.self_by_package) | set(bare.self_by_package),
        key=lambda p: -ours.self_by_package[p],
    )
    rows = []
    for p in packages:
        o = ours.us_per_request(ours.self_by_package[p])
        b = bare.us_per_request(bare.self_by_package[p])
        if o < 1 and b < 1:
            continue
        rows.append([p, o, b, o - b])
    rows.append(
        [
            "total",
            ours.us_per_request(ours.samples),
            bare.us_per_request(bare.samples),
            ours.us_per_request(ours.samples) - bare.us_per_request(bare.samples),
        ]
    )
    top_self = [
        [f"{ours.us_per_request(n):.1f}", f[:100]] for f, n in ours.self_by_function.most_common(15)
    ]
    top_ours = [
        [f"{ours.us_per_request(n):.1f}", f[:100]] for f, n in ours.inclusive_ours.most_common(12)
    ]
    return "\n".join(
        [
            f"{title}: py-spy, {ours.samples} samples (ours) / {bare.samples} (bare), "
            "CPU microseconds per request by the package of the running (leaf) Python frame "
            "(C code, uvloop included, is charged to its Python caller)",
            table(["package", "ours us/req", "bare us/req", "extra"], rows),
            "",
            "ours, top leaf functions (us/req):",
            table(["us/req", "function (file)"], top_self),
            "",
            "ours, our own functions, inclusive (us/req; coroutine stacks under uvloop are "
            "partial, so these are lower bounds):",
            table(["us/req", "function (file)"], top_ours),
        ]
    )


async def _prepare(bs: BenchStack) -> tuple[str, str]:
    """A known product, a photo and one completed try-on; returns (POST body, try-on id)."""
    async with gateway_client(bs.gateway_url) as api:
        image_id = await upload_photo(api, photo_bytes())
        await put_product(api, "tee", bs.emulator.asset_url())
        tryon_id = await start_tryon(api, image_id, "tee")
        await wait_terminal(api, tryon_id, timeout=30)
    return json.dumps(tryon_body(image_id, "tee"), separators=(",", ":")), tryon_id


def main(args: argparse.Namespace) -> None:
    workdir = args.keep or tempfile.mkdtemp(prefix="tryon-bench-rps-")
    os.makedirs(workdir, exist_ok=True)
    try:
        with BenchStack(speed=100.0) as bs:
            bs.start_emulator()
            flush_redis(bs.redis_url)
            ours = bs.start_gateway()
            bs.start_worker()
            body, tryon_id = asyncio.run(_prepare(bs))
            bs.stop("worker")
            port = free_port()
            log = open(os.path.join(workdir, "bare.log"), "ab")  # noqa: SIM115
            bs.stack.procs["bare"] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.bare_app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    "--proxy-headers",
                    "--no-server-header",  # as `tryon-gateway serve`
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            bare = f"http://127.0.0.1:{port}"
            wait_http(f"{bare}/v1/try-ons/x", bs.stack.procs["bare"])
            servers = {"ours": (ours, bs.pid("gateway")), "bare": (bare, bs.pid("bare"))}
            gen = LoadGen(args.connections, workdir)
            results: dict[tuple[str, str], list[Load]] = {}
            for method in ("POST", "GET"):
                path = "/v1/try-ons" if method == "POST" else f"/v1/try-ons/{tryon_id}"
                for url, pid in servers.values():  # warm both
                    gen.run(url + path, method, body, 2, pid)
                for _ in range(args.rounds):
                    for name, (url, pid) in servers.items():
                        load = gen.run(url + path, method, body, args.duration, pid)
                        results.setdefault((method, name), []).append(load)
            profiles = []
            for method in ("POST", "GET") if args.profile > 0 else ():
                path = "/v1/try-ons" if method == "POST" else f"/v1/try-ons/{tryon_id}"
                got = [
                    profile(url + path, method, body, pid, gen, args.profile, workdir)
                    for url, pid in servers.values()
                ]
                profiles.append(profile_report(f"{method} {path}", got[0], got[1]))
            log.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    targets = {"POST": 0.40, "GET": 0.60}
    checks = []
    for method in ("POST", "GET"):
        o, b = results[(method, "ours")], results[(method, "bare")]
        o_rps = statistics.median(x.rps for x in o)
        b_rps = statistics.median(x.rps for x in b)
        for name, loads, rps in (("ours", o, o_rps), ("bare Litestar", b, b_rps)):
            rows.append(
                [
                    f"{method} /v1/try-ons" + ("" if method == "POST" else "/{id}"),
                    name,
                    " / ".join(f"{x.rps:.0f}" for x in loads),
                    rps,
                    statistics.median(x.p50_ms for x in loads),
                    statistics.median(x.p99_ms for x in loads),
                    sum(x.errors for x in loads),
                    statistics.median(x.server_cpu for x in loads),
                    _cpu_us(loads),
                    rps / b_rps,
                ]
            )
        ratio = o_rps / b_rps
        checks.append(
            f"target {method} >= {targets[method]:.0%} of bare: "
            f"{'PASS' if ratio >= targets[method] else 'FAIL'} ({ratio:.1%}; by server CPU per "
            f"request, less disturbed by other load: {_cpu_us(b) / _cpu_us(o):.1%})"
        )
    print(f"machine: {machine()}")
    print(
        f"load: {gen.tool}, 1 thread, {args.connections} connections, {args.duration:g} s per "
        f"run, {args.rounds} alternating rounds (after a 2 s warm-up of each); one uvicorn "
        "process per server; no worker running"
    )
    print()
    print(
        table(
            [
                "request",
                "server",
                "req/s per round",
                "req/s (median)",
                "p50 ms",
                "p99 ms",
                "non-2xx/errors",
                "server CPU (cores)",
                "server CPU us/req",
                "ours/bare",
            ],
            rows,
        )
    )
    print()
    print("\n".join(checks))
    for text in profiles:
        print()
        print(text)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--profile", type=float, default=6.0, help="seconds of py-spy sampling (0: none)"
    )
    p.add_argument(
        "--keep", metavar="DIR", help="keep the raw py-spy stacks and server logs in DIR"
    )
    main(p.parse_args())
