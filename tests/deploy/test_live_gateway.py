"""Against a real gateway and worker (subprocesses, the emulator, the test Redis database):
every metric name deploy/ uses is one the gateway exports, and the worker liveness probe
follows the worker's heartbeat."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from service.devstack import free_port

from tests.conftest import Emulator
from tests.deploy.manifests import DEPLOY, all_exprs, metric_names
from tests.e2e.conftest import (
    Gateway,
    photo_bytes,
    put_product,
    stack_env,
    stack_fixture,
    start_tryon,
    wait_terminal,
)

pytestmark = pytest.mark.slow

PROBE = str(DEPLOY / "probes" / "worker_alive.py")
# The sample names of each declared type (prometheus-client declares counters with _total).
SUFFIXES = {"counter": ("",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


gateway = stack_fixture(WORKER_HEALTH_CHECK_INTERVAL="1")


def exported(text: str) -> tuple[set[str], set[str]]:
    """(names the exposition declares, names that have a sample now)."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            declared |= {name + suffix for suffix in SUFFIXES[kind]}
        elif line and not line.startswith("#"):
            sampled.add(line.partition("{")[0].partition(" ")[0])
    return declared, sampled


async def test_every_metric_deploy_uses_is_exported(
    gateway: Gateway, emulator: Emulator, redis: Any
) -> None:
    async with gateway.client() as api:
        r = await api.post("/v1/images", files={"file": ("p.jpg", photo_bytes(), "image/jpeg")})
        assert r.status_code == 201, r.text
        await put_product(api, emulator)
        tryon = await start_tryon(api, r.json()["id"])
        assert (await wait_terminal(api, tryon["id"]))["status"] == "completed"
        used = {name for expr in all_exprs() for name in metric_names(expr)}
        # The credit balance appears once a worker's sweep (every 2 s here) has read it.
        for _ in range(50):
            text = (await api.get("/metrics")).text
            declared, sampled = exported(text)
            if used <= declared:
                break
            await asyncio.sleep(0.2)
    # The scrape is real: the try-on just made is counted.
    assert 'tryon_gateway_tryon_finished_total{status="completed"} 1.0' in text
    assert {"tryon_gateway_tryon_accepted_total", "tryon_gateway_workers_live",
            "tryon_gateway_tryon_stage_seconds_bucket"} <= sampled  # fmt: skip
    assert used - declared == set()


def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, PROBE], env=env, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


async def test_worker_probe_follows_the_heartbeat(gateway: Gateway, emulator: Emulator) -> None:
    env = stack_env(emulator)
    # The previous test's clean slate (a flushed database) took the last beat with it: the
    # worker writes the next within a beat (1 s here).
    for _ in range(50):
        if (alive := probe(env)).returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert alive.returncode == 0, alive.stdout + alive.stderr
    assert "heartbeat fresh" in alive.stdout
    # Redis down is not the worker's fault: no restart asked.
    unreachable = probe({**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert unreachable.returncode == 0, unreachable.stdout + unreachable.stderr
    assert "Redis unavailable" in unreachable.stdout
    # A stopped worker leaves no heartbeat: the probe fails.
    gateway.stack.stop("worker0", signal.SIGTERM)
    dead = probe(env)
    assert dead.returncode == 1, dead.stdout + dead.stderr
    assert f"no fresh heartbeat from {os.uname().nodename}" in dead.stdout
    gateway.add_worker("worker0")
    # The new worker's first heartbeat comes once it started (slow on a loaded machine).
    for _ in range(150):
        if probe(env).returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert probe(env).returncode == 0
