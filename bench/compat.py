"""What Genlook's API at /tryon/v1 costs over the gateway's own, in one run: CPU per request of
`POST /tryon/v1/try-on` against `POST /v1/try-ons`, and of `GET /tryon/v1/generations/{id}`
against `GET /v1/try-ons/{id}`, the ASGI app called in process as bench/gateway_inproc.py does
(same callers, same batches; the 10th percentile of the batches, and the median). The same
app, the same Redis, the same product reference and photo; the routes alternate `--rounds`
times.

    uv run python -m bench.compat [--requests 5000] [--rounds 3] [--concurrency 32]

Redis database 12 (`BENCH_REDIS_URL`), flushed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import httpx
import uvloop

from bench._common import APP, BENCH_REDIS_URL, SECRET, flush_redis, machine
from bench.gateway_inproc import (
    Lifespan,
    Request,
    _caller,
    _low,
    _prepare,
    _quiet_logs,
    measure_all,
)

_KEY = (b"x-api-key", SECRET.encode())


async def _generation(app: object, body: bytes) -> str:
    """One try-on started on /tryon/v1: the id its GET reads."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://127.0.0.1:8080",
        headers={"x-api-key": SECRET, "content-type": "application/json"},
    ) as client:
        r = await client.post("/tryon/v1/try-on", content=body)
        r.raise_for_status()
        return str(r.json()["generationId"])


async def main(args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.settings import Settings

    settings = Settings.from_env(
        {**os.environ, "REDIS_URL": BENCH_REDIS_URL, "GATEWAY_SECRET_KEYS": f"{SECRET}={APP}"}
    )
    flush_redis()
    app = create_app(settings)
    try:
        async with Lifespan(app):
            _quiet_logs()
            body, tryon_id = await _prepare(app)
            generation_id = await _generation(app, body)
            calls: dict[tuple[str, str], Request] = {
                ("POST", "native"): _caller(app, "POST", "/v1/try-ons/", body),
                ("POST", "compat"): _caller(app, "POST", "/tryon/v1/try-on", body, _KEY),
                ("GET", "native"): _caller(app, "GET", f"/v1/try-ons/{tryon_id}", b""),
                ("GET", "compat"): _caller(
                    app, "GET", f"/tryon/v1/generations/{generation_id}", b"", _KEY
                ),
            }
            results = await measure_all(calls, args)
    finally:
        flush_redis()
    print(machine())
    print(
        f"CPU us/request, in process (uvloop), {args.rounds} rounds of {args.requests} requests, "
        f"{args.concurrency} in flight: 10th percentile (median)"
    )
    print(json.dumps({"body": body.decode()}))
    for method in ("POST", "GET"):
        native, compat = results[(method, "native")], results[(method, "compat")]
        n, c = _low(native), _low(compat)
        print(
            f"{method:<4} native {n:6.1f} ({statistics.median(native):6.1f})  "
            f"compat {c:6.1f} ({statistics.median(compat):6.1f})  compat/native {c / n:.2f}x"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=5_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    uvloop.run(main(p.parse_args()))
