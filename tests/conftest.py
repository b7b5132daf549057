"""Shared fixtures: real processes on loopback, real Redis, no mocks.

The emulator runs as a subprocess (`tryon-gateway emulator`) for the whole session; each test
that takes the `emulator` fixture starts from a reset state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

EMULATOR_KEY = "gk_test_emulator_key_0123456789abcdefghijklmnopq"
# Fast enough that a ~10 s generation takes ~0.1 s, slow enough that states are observable.
EMULATOR_SPEED = 100.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
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
class Emulator:
    """A running emulator: its Genlook base URL, its key and its control API."""

    root: str
    api_key: str

    @property
    def base_url(self) -> str:
        return f"{self.root}/tryon/v1"

    def control(self, method: str, path: str, json: Any = None) -> Any:
        r = httpx.request(method, f"{self.root}/_emulator/{path}", json=json, timeout=10.0)
        r.raise_for_status()
        return r.json() if r.content else None

    def reset(self, **config: Any) -> None:
        self.control("POST", "reset", json=config or None)

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "counters")
        return result


@pytest.fixture(scope="session")
def emulator_process() -> Iterator[Emulator]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "emulator",
        "--port",
        str(port),
        "--api-key",
        EMULATOR_KEY,
        "--speed",
        str(EMULATOR_SPEED),
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    root = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{root}/_emulator/counters", proc=proc)
        # The port was free when chosen; make sure the server answering it is ours.
        assert proc.poll() is None, "the emulator exited: its port was taken meanwhile"
        yield Emulator(root=root, api_key=EMULATOR_KEY)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def emulator(emulator_process: Emulator) -> Emulator:
    emulator_process.reset()
    return emulator_process


# Tests own one Redis database index and flush it around each test that uses it.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
async def redis() -> Any:
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()
