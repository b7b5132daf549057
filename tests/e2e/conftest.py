"""End-to-end fixtures: a real gateway and real workers (subprocesses) on loopback, against
the emulator subprocess and the test Redis database."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image
from redis.asyncio import Redis
from service.devstack import Stack, free_port, wait_http
from service.keys import Keys

from tests.conftest import EMULATOR_SPEED, KEYSCAN, RESULTS_DIR, TEST_REDIS_URL, Emulator
from tests.e2e.receiver import Receiver
from tests.e2e.redis_server import PersistentRedis

SECRET = "sk_test_e2e_secret_key_0123456789"
OTHER_SECRET = "sk_test_e2e_other_app_key_012345"


async def eventually(
    probe: Callable[[], Awaitable[bool]],
    within: float = 5.0,
    every: float = 0.1,
    what: str = "condition not met in time",
) -> None:
    """Wait until `probe()` holds, failing with `what` after `within` seconds: for what another
    process does in its own time (a worker, a gateway, a browser's event reaching the test)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(every)


def stack_env(emulator: Emulator, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": TEST_REDIS_URL,
        "GENLOOK_API_KEY": emulator.api_key,
        "GENLOOK_BASE_URL": emulator.base_url,
        "GENLOOK_CLOCK_SPEED": str(EMULATOR_SPEED),
        # The emulator's 60 s window runs EMULATOR_SPEED times faster.
        "GENLOOK_RATE_WINDOW": str(60.0 / EMULATOR_SPEED),
        "GATEWAY_SECRET_KEYS": f"{SECRET}=shop,{OTHER_SECRET}=other",
        "WORKER_JOB_TIMEOUT": "20",
        "WORKER_SWEEP_INTERVAL": "2",
        "WORKER_TRYON_DEADLINE": "120",
        "WORKER_JOB_COMPLETION_WAIT": "5",
    }
    env.update(overrides)
    return env


@dataclass
class Gateway:
    """A running stack: gateways and workers as subprocesses on loopback."""

    urls: list[str]
    stack: Stack
    emulator: Emulator

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def queue(self) -> str:
        """The stack's own arq queue."""
        return self.stack.env["REDIS_QUEUE_NAME"]

    def client(self, key: str = SECRET) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
        )

    def add_worker(self, name: str) -> None:
        self.stack.spawn(name, "worker")


def start_gateway(
    emulator: Emulator,
    *,
    gateways: int = 1,
    workers: int = 1,
    log_dir: str | None = None,
    **env: str,
) -> Gateway:
    """Start a stack (the caller stops it; `running_stack` and `stack_fixture` do): gateways
    named `gateway` (`gateway0`, `gateway1`... when several) and workers `worker0`...; each
    process logs to `<log_dir>/<name>.log`."""
    names = ["gateway"] if gateways == 1 else [f"gateway{g}" for g in range(gateways)]
    started = [(name, f"http://127.0.0.1:{free_port()}") for name in names]
    # The run's one result store (tests/conftest.py); its workers make links to its (first)
    # gateway. Each stack has its own queue: a test's stack started beside its module's (they
    # share the database) must not have its jobs taken by the other stack's workers, which store
    # results elsewhere and know other settings.
    env = {
        "RESULTS_STORE_URL": RESULTS_DIR,
        "RESULTS_BASE_URL": started[0][1],
        "REDIS_QUEUE_NAME": f"tryon:queue:{started[0][1].rsplit(':', 1)[1]}",
        **env,
    }
    # Logs go to files by default so the run's key scan reads them (tests/keyscan.py).
    stack = Stack(env=stack_env(emulator, **env), log_dir=log_dir or KEYSCAN.new_log_dir())
    try:
        for name, url in started:
            stack.spawn(name, "serve", "--port", url.rsplit(":", 1)[1])
        for i in range(workers):
            stack.spawn(f"worker{i}", "worker")
        for name, url in started:
            wait_http(f"{url}/healthz", stack.procs[name])
    except BaseException:
        stack.stop_all()
        raise
    return Gateway(urls=[url for _, url in started], stack=stack, emulator=emulator)


@contextmanager
def running_stack(emulator: Emulator, **options: Any) -> Iterator[Gateway]:
    """A stack for the block: `start_gateway(emulator, **options)`, stopped on leaving."""
    gw = start_gateway(emulator, **options)
    try:
        yield gw
    finally:
        gw.stack.stop_all()


def stack_fixture(**options: Any) -> Any:
    """The module-scoped fixture of a test module's own stack (`start_gateway` options and
    settings), e.g. `gateway = stack_fixture(OPS_ADMIN_TOKENS="...")`: named `gateway`, it
    replaces the default one below for that module, and `api` uses it."""

    def fixture(emulator_process: Emulator) -> Iterator[Gateway]:
        with running_stack(emulator_process, **options) as gw:
            yield gw

    fixture.__doc__ = f"A stack started with {options or 'the defaults'}, for the module."
    return pytest.fixture(scope="module")(fixture)


# The default stack: one gateway and one worker with `stack_env`'s settings.
gateway = stack_fixture()


@pytest.fixture
async def api(
    gateway: Gateway, emulator: Emulator, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """A secret-key client on a clean slate: emulator reset, test database flushed."""
    async with gateway.client() as client:
        yield client


def photo_bytes(
    color: tuple[int, int, int] = (200, 150, 120), size: tuple[int, int] = (64, 80)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def keys_cli(*args: str, redis_url: str = TEST_REDIS_URL) -> dict[str, Any]:
    """`tryon-gateway keys ... --json` against `redis_url`, its answer decoded."""
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", *args, "--json"],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def product_url(emulator: Emulator, name: str = "red-tee.png") -> str:
    return f"{emulator.root}/_emulator/assets/{name}"


async def upload_photo(api: httpx.AsyncClient, data: bytes | None = None, **fields: str) -> str:
    r = await api.post(
        "/v1/images", files={"file": ("p.jpg", data or photo_bytes(), "image/jpeg")}, data=fields
    )
    assert r.status_code == 201, r.text
    image_id: str = r.json()["id"]
    return image_id


async def put_product(
    api: httpx.AsyncClient,
    emulator: Emulator,
    external_id: str = "tee",
    title: str = "Red tee",
    image: str = "red-tee.png",
) -> None:
    r = await api.put(
        f"/v1/products/{external_id}",
        json={"title": title, "images": [{"source": {"url": product_url(emulator, image)}}]},
    )
    assert r.status_code in (200, 201), r.text


async def start_tryon(
    api: httpx.AsyncClient, image_id: str, external_id: str = "tee", **extra: Any
) -> dict[str, Any]:
    body = {
        "products": [{"externalId": external_id}],
        "person": {"image": {"source": {"id": image_id}}},
        **extra,
    }
    r = await api.post("/v1/try-ons", json=body)
    assert r.status_code == 202, r.text
    result: dict[str, Any] = r.json()
    return result


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


async def tryon_doc(redis: Redis, tryon_id: str) -> dict[str, Any]:
    """The try-on's record as the store keeps it (with fields its API view leaves out)."""
    raw = await redis.hget(Keys().tryon(tryon_id), "doc")
    assert raw is not None, f"no record of try-on {tryon_id}"
    doc: dict[str, Any] = json.loads(raw)
    return doc


async def wait_terminal(
    api: httpx.AsyncClient, tryon_id: str, within: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await api.get(f"/v1/try-ons/{tryon_id}", params={"wait": 10})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("completed", "failed", "canceled"):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"try-on {tryon_id} still {body['status']}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback answering 200 (tests/e2e/receiver.py)."""
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
def persistent_redis() -> Iterator[PersistentRedis]:
    """A private redis-server with AOF, for tests that stop and restart Redis."""
    server = PersistentRedis()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
