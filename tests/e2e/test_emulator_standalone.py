"""The documented no-account setup, run as compose's `--profile emulator` runs it: the emulator
started on its own (no `--api-key`), `serve` and `worker` as separate processes with no
`GENLOOK_API_KEY`, only `GENLOOK_BASE_URL` pointing at the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from service.devstack import Stack, free_port, wait_http

from tests.conftest import EMULATOR_SPEED, KEYSCAN, RESULTS_DIR, Emulator
from tests.e2e.conftest import (
    SECRET,
    Gateway,
    put_product,
    stack_env,
    start_tryon,
    upload_photo,
    wait_terminal,
)


@pytest.fixture
def keyless_gateway() -> Iterator[Gateway]:
    emulator_port, port = free_port(), free_port()
    root = f"http://127.0.0.1:{emulator_port}"
    # The key is whatever the emulator chose for itself; the gateway is never told it.
    emulator = Emulator(root=root, api_key="")
    url = f"http://127.0.0.1:{port}"
    env = stack_env(
        emulator,
        GENLOOK_BASE_URL=f"{root}/tryon/v1",
        RESULTS_STORE_URL=RESULTS_DIR,
        RESULTS_BASE_URL=url,
    )
    del env["GENLOOK_API_KEY"]
    stack = Stack(env=env, log_dir=KEYSCAN.new_log_dir())
    try:
        stack.spawn(
            "emulator", "emulator", "--port", str(emulator_port), "--speed", str(EMULATOR_SPEED)
        )
        wait_http(f"{root}/_emulator/counters", stack.procs["emulator"])
        stack.spawn("gateway", "serve", "--port", str(port))
        stack.spawn("worker", "worker")
        wait_http(f"{url}/healthz", stack.procs["gateway"])
        yield Gateway(urls=[url], stack=stack, emulator=emulator)
    finally:
        stack.stop_all()


async def test_emulator_on_its_own_accepts_a_gateway_without_a_key(
    keyless_gateway: Gateway, redis: Redis
) -> None:
    async with keyless_gateway.client(SECRET) as api:
        credits = await api.get("/v1/account/credits")
        assert credits.status_code == 200, credits.text
        image_id = await upload_photo(api)
        await put_product(api, keyless_gateway.emulator)
        created = await start_tryon(api, image_id)
        done = await wait_terminal(api, created["id"])
    assert done["status"] == "completed", done
