"""REDIS_URL as a Sentinel URL: a gateway and a worker find the master through a real
redis-sentinel, complete a try-on, and follow a failover to the promoted replica."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from service.devstack import free_port, port_answers

from tests.conftest import Emulator
from tests.e2e.conftest import photo_bytes, put_product, running_stack, start_tryon, wait_terminal

pytestmark = pytest.mark.slow

MASTER_NAME = "tryon-test"


class SentinelSetup:
    """A master, a replica and one sentinel (quorum 1), each a private process."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tryon-sentinel-"))
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{MASTER_NAME}/0"

    def _run(self, port: int, *args: str) -> None:
        self.procs.append(subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL))
        for _ in range(100):
            if port_answers("127.0.0.1", port):
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on {port} did not start")

    def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._run(
            self.master_port, "--port", str(self.master_port), "--dir", str(self.dir), *common
        )
        replica_dir = self.dir / "replica"
        replica_dir.mkdir()
        self._run(
            self.replica_port,
            *("--port", str(self.replica_port), "--dir", str(replica_dir), *common),
            *("--replicaof", "127.0.0.1", str(self.master_port)),
        )
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        self._run(self.sentinel_port, str(conf), "--sentinel")

    def sentinel(self) -> Redis:
        return Redis(port=self.sentinel_port, socket_timeout=5)

    def wait_replica_known(self, within: float = 30) -> None:
        """Sentinel learns replicas from the master's INFO; failover needs one in sync."""
        deadline = time.monotonic() + within
        with self.sentinel() as s:
            while time.monotonic() < deadline:
                replicas = s.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
                if replicas and any(_fields(r).get("master-link-status") == "ok" for r in replicas):
                    return
                time.sleep(0.2)
        raise AssertionError("the sentinel never saw the replica in sync")

    def failover(self, within: float = 30) -> None:
        with self.sentinel() as s:
            s.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                _, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                if int(port) == self.replica_port and _role(self.master_port) == "slave":
                    return
                time.sleep(0.2)
        raise AssertionError("the failover did not complete")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _fields(flat: list[bytes] | dict[bytes, bytes]) -> dict[str, str]:
    if isinstance(flat, dict):
        return {k.decode(): v.decode() for k, v in flat.items()}
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


def _role(port: int) -> str:
    with Redis(port=port, socket_timeout=5) as r:
        role: str = r.execute_command("ROLE")[0].decode()
        return role


@pytest.fixture
def sentinel_setup() -> Iterator[SentinelSetup]:
    setup = SentinelSetup()
    setup.start()
    yield setup
    setup.stop()


async def test_gateway_and_worker_through_sentinel_and_failover(
    emulator: Emulator, sentinel_setup: SentinelSetup
) -> None:
    with running_stack(
        emulator, REDIS_URL=sentinel_setup.url, WORKER_HEALTH_CHECK_INTERVAL="1"
    ) as gw:
        async with gw.client() as api:
            r = await api.post("/v1/images", files={"file": ("p.jpg", photo_bytes(), "image/jpeg")})
            assert r.status_code == 201, r.text
            image_id = r.json()["id"]
            await put_product(api, emulator)
            first = await start_tryon(api, image_id)
            done = await wait_terminal(api, first["id"])
            assert done["status"] == "completed", done
            # The record lives on the master the sentinel named, the only Redis we started.
            with Redis(port=sentinel_setup.master_port) as master:
                assert master.exists(f"tryon:t:{first['id']}")

            sentinel_setup.wait_replica_known()
            sentinel_setup.failover()
            # Every client reconnects to the promoted replica: readiness (redis-py pool and a
            # live worker's heartbeat written there), then a whole try-on again.
            deadline = asyncio.get_running_loop().time() + 30
            while (await api.get("/readyz")).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, "never ready after failover"
                await asyncio.sleep(0.3)
            second = await start_tryon(api, image_id)
            done = await wait_terminal(api, second["id"])
            assert done["status"] == "completed", done
            with Redis(port=sentinel_setup.replica_port) as promoted:
                assert _role(sentinel_setup.replica_port) == "master"
                assert promoted.exists(f"tryon:t:{second['id']}")
