"""Processes on this machine for a newcomer (`tryon-gateway dev`) and for end-to-end tests:
Redis when none answers, the emulator when no Genlook key is set, the gateway and workers.
Everything started here is stopped here."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from service.demo import emulator_asset_root, prepare_demo
from service.settings import EMULATOR_DEMO_KEY, Settings

DEMO_SECRET_KEY = "sk_dev_demo_0123456789abcdefghijklmnop"
DEMO_ADMIN_TOKEN = "ops_dev_demo_admin_token_0123456789"
DEMO_APP = "demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Stack:
    """A set of child processes sharing one environment."""

    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tempdirs: list[str] = field(default_factory=list)
    # When set, each process's output goes to `<log_dir>/<name>.log` instead of ours.
    log_dir: str | None = None

    def spawn(self, name: str, *args: str, extra_env: Mapping[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "service.cli", *args]
        env = {**self.env, **(extra_env or {})}
        out = None
        if self.log_dir is not None:
            out = open(os.path.join(self.log_dir, f"{name}.log"), "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
        if out is not None:
            out.close()  # the child holds its own descriptor

    def start_redis(self, port: int) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("no Redis answers and redis-server is not installed")
        workdir = tempfile.mkdtemp(prefix="tryon-redis-")
        self.tempdirs.append(workdir)
        self.procs["redis"] = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                workdir,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_answers("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not start")
            time.sleep(0.05)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        # Workers and gateway first, then what they depend on.
        for name in sorted(self.procs, key=lambda n: n in ("redis", "emulator")):
            self.stop(name)
        for d in self.tempdirs:
            shutil.rmtree(d, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(*, port: int, emulator_port: int, speed: float) -> int:
    # SIGTERM (a supervisor, `timeout`) stops everything as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    env.setdefault("GATEWAY_SECRET_KEYS", f"{DEMO_SECRET_KEY}={DEMO_APP}")
    # Local receivers (http://127.0.0.1:...) may get webhooks in dev; never in production.
    env.setdefault("WEBHOOK_ALLOW_HTTP_HOSTS", "127.0.0.1,localhost")
    env.setdefault("OPS_ADMIN_TOKENS", f"{DEMO_ADMIN_TOKEN}=dev")
    redis_url = env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    # Result links are made by workers too, which do not know the gateway's --port.
    env.setdefault("RESULTS_BASE_URL", f"http://127.0.0.1:{port}")
    stack = Stack(env=env)
    lines = []
    try:
        parts = urlsplit(redis_url)
        host, rport = parts.hostname or "127.0.0.1", parts.port or 6379
        if not port_answers(host, rport):
            stack.start_redis(rport)
            lines.append(f"Redis      redis://127.0.0.1:{rport} (private, stops with this)")
        else:
            lines.append(f"Redis      {redis_url} (already running)")
        if not env.get("GENLOOK_API_KEY"):
            env["GENLOOK_BASE_URL"] = f"http://127.0.0.1:{emulator_port}/tryon/v1"
            env["GENLOOK_CLOCK_SPEED"] = str(speed)
            env["GENLOOK_RATE_WINDOW"] = str(60.0 / speed)
            stack.spawn(
                "emulator",
                "emulator",
                "--port",
                str(emulator_port),
                "--api-key",
                EMULATOR_DEMO_KEY,
                "--speed",
                str(speed),
            )
            wait_http(
                f"http://127.0.0.1:{emulator_port}/_emulator/counters", stack.procs["emulator"]
            )
            lines.append(
                f"Emulator   http://127.0.0.1:{emulator_port}/tryon/v1 "
                f"(Genlook stand-in; key {EMULATOR_DEMO_KEY})"
            )
            # The /demo storefront: its app (the gateway's own origins allowed) and catalog,
            # whose pictures only the emulator can fetch.
            env.setdefault("GATEWAY_DEMO_APP", DEMO_APP)
            prepare_demo(
                Settings.from_env(env),
                env["GATEWAY_DEMO_APP"],
                origins=[f"http://127.0.0.1:{port}", f"http://localhost:{port}"],
                asset_root=emulator_asset_root(env["GENLOOK_BASE_URL"]),
            )
            lines.append(f"Demo store http://127.0.0.1:{port}/demo")
        stack.spawn("gateway", "serve", "--port", str(port))
        stack.spawn("worker", "worker")
        wait_http(f"http://127.0.0.1:{port}/healthz", stack.procs["gateway"])
        lines += [
            f"Gateway    http://127.0.0.1:{port}",
            f"API docs   http://127.0.0.1:{port}/docs",
            f"Ops        http://127.0.0.1:{port}/ops (admin token {DEMO_ADMIN_TOKEN})",
            f"Metrics    http://127.0.0.1:{port}/metrics",
            f"Secret key {DEMO_SECRET_KEY} (app '{DEMO_APP}'; set GATEWAY_SECRET_KEYS to change)",
        ]
        print("tryon-gateway dev is running:\n  " + "\n  ".join(lines), flush=True)
        print("Press Ctrl-C to stop everything.", flush=True)
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.procs.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop_all()
