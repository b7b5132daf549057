"""`serve(...)`: what `tryon-gateway emulator` runs."""

from __future__ import annotations

import uvicorn

from emulator.app import BASE_PATH, create_app
from emulator.config import EmulatorConfig
from emulator.demo_key import DEMO_API_KEY
from emulator.links import DEFAULT_URL_LIFETIME

# Seconds an idle client connection is kept open (see `run`).
KEEP_ALIVE_SECONDS = 75


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    api_key: str | None = None,
    credits: int = 1000,
    rate_limit: int = 100,
    speed: float = 1.0,
    result_url_lifetime: float = DEFAULT_URL_LIFETIME,
) -> None:
    config = EmulatorConfig(
        api_key=api_key or DEMO_API_KEY,
        credits=credits,
        rate_limit=rate_limit,
        speed=speed,
        result_url_lifetime=result_url_lifetime,
    )
    root = f"http://{host}:{port}"
    print(f"Genlook emulator: GENLOOK_BASE_URL={root}{BASE_PATH}", flush=True)
    if api_key is None:
        print(f"Genlook emulator: demo API key {config.api_key}", flush=True)
    print(f"Genlook emulator: control API at {root}/_emulator/", flush=True)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        # Requests held by a `timeout` fault must not block shutdown for long.
        timeout_graceful_shutdown=1,
        # As Genlook's load balancer, longer than its clients' idle timeout (the gateway's and
        # the emulator's own product-image fetches use httpx's 5 s): uvicorn's 5 s equals it,
        # and a request sent on a connection the server was closing at that instant failed.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
