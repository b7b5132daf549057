"""Shared fixtures: real processes on loopback, real Redis, no mocks.

The emulator runs as a subprocess (`tryon-gateway emulator`) for the whole session; each test
that takes the `emulator` fixture starts from a reset state.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator.control_client import EmulatorControl
from service.devstack import free_port, wait_http
from service.settings import Settings

from tests.keyscan import KeyScan

EMULATOR_KEY = "gk_test_emulator_key_0123456789abcdefghijklmnopq"
# Keys of stored upstream accounts (service/accounts/): a second emulator's, and one only ever
# stored (never valid anywhere).
SECOND_ACCOUNT_KEY = "gk_test_second_account_key_9876543210zyxwvutsrq"
STORED_ONLY_KEY = "gk_test_stored_only_key_AAAABBBBCCCCDDDDEEEEFFFF"
# Every Genlook key the run hands to a gateway; none may ever reach a response or a log line.
KEYSCAN = KeyScan(
    [EMULATOR_KEY, SECOND_ACCOUNT_KEY, STORED_ONLY_KEY, os.environ.get("GENLOOK_API_KEY", "")]
)
# Fast enough that a ~10 s generation takes ~0.1 s, slow enough that states are observable.
EMULATOR_SPEED = 100.0


class Emulator(EmulatorControl):
    """The session's emulator (see `emulator_process`)."""


@contextlib.contextmanager
def run_emulator(api_key: str) -> Iterator[Emulator]:
    """An emulator subprocess (`tryon-gateway emulator`) for one Genlook account's key."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "emulator",
        "--port",
        str(port),
        "--api-key",
        api_key,
        "--speed",
        str(EMULATOR_SPEED),
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    root = f"http://127.0.0.1:{port}"
    KEYSCAN.skip_origin(root)  # the emulator is Genlook: its answers are not ours
    try:
        wait_http(f"{root}/_emulator/counters", proc=proc)
        # The port was free when chosen; make sure the server answering it is ours.
        assert proc.poll() is None, "the emulator exited: its port was taken meanwhile"
        yield Emulator(root=root, api_key=api_key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def emulator_process() -> Iterator[Emulator]:
    with run_emulator(EMULATOR_KEY) as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_process: Emulator) -> Emulator:
    emulator_process.reset()
    return emulator_process


# Tests own one Redis database index and flush it around each test that uses it.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
# Results stored by gateways and workers, in process or not: the run's own directory, never the
# working tree's `data/` (the default store of `make dev`). One for the whole run, as a fleet
# shares one store: stacks share the test database, so a worker of one stack may take another's
# try-on (a kill-and-resume test's above all).
_RESULTS = tempfile.TemporaryDirectory(prefix="tryon-test-results-")
RESULTS_DIR = _RESULTS.name


def emulator_settings(emulator: EmulatorControl, **overrides: str) -> Settings:
    """Settings of an in-process gateway or worker on the session's emulator (its time scale)
    and the test database, storing results in the run's own directory."""
    return Settings.from_env(
        {
            "REDIS_URL": TEST_REDIS_URL,
            "GENLOOK_API_KEY": emulator.api_key,
            "GENLOOK_BASE_URL": emulator.base_url,
            "GENLOOK_CLOCK_SPEED": str(EMULATOR_SPEED),
            # The emulator's 60 s window runs EMULATOR_SPEED times faster.
            "GENLOOK_RATE_WINDOW": str(60.0 / EMULATOR_SPEED),
            "RESULTS_STORE_URL": RESULTS_DIR,
            **overrides,
        }
    )


@pytest.fixture
async def redis() -> Any:
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error envelope (gateway and emulator alike), with this status and code."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def pytest_configure(config: pytest.Config) -> None:
    KEYSCAN.install()

    def basetemp() -> Path:
        # Looked up when first needed: the tmp_path plugin sets it up in its own configure.
        path: Path = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
        return path

    KEYSCAN.log_root = basetemp


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    roots = []
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        roots.append(factory.getbasetemp())
    findings = KEYSCAN.finish(roots)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        counts = ", ".join(f"{n} {what}" for what, n in KEYSCAN.scanned.items())
        reporter.write_line(f"Genlook key scan: {counts}; {len(findings)} finding(s)")
        for finding in findings[:50]:
            reporter.write_line(f"  KEY LEAK {finding}", red=True)
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- an S3 API server on loopback (moto's server mode), for the S3 result store ------------


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard variables obstore reads: an endpoint on loopback, dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API server (`python -m moto.server`) for the run; its endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/", proc=proc)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
