"""The baseline: the integration Genlook's docs lead to, written the obvious way.

For each try-on it uploads the person photo, creates the generation with the product inline
(`POST /try-on`), then polls `GET /generations/{id}` every 2 s (the documented interval,
divided by the emulator's speed) until the generation is terminal. It keeps no state between
try-ons and shares no rate budget between concurrent tasks. On a 429 it does what a careful
naive client does: sleep the Retry-After it was given, then resend that same request.

Usable on its own against a running emulator:

    uv run python -m bench.naive --base-url http://127.0.0.1:8081/tryon/v1 --api-key gk_... \
        --speed 20 --count 10
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

DOCUMENTED_POLL_SECONDS = 2.0
MAX_ATTEMPTS = 50  # per request, so a saturated account cannot loop forever


@dataclass
class NaiveResult:
    generation_id: str | None
    status: str
    detected_at: float  # wall time the client saw the terminal state
    calls: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0


class NaiveClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        speed: float = 1.0,
        product_image_url: str,
        connections: int = 100,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"x-api-key": api_key},
            timeout=60.0,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._poll = DOCUMENTED_POLL_SECONDS / speed
        self._speed = speed
        self._product_image_url = product_image_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, result: NaiveResult, name: str, method: str, path: str, **kw: Any) -> Any:
        for _ in range(MAX_ATTEMPTS):
            r = await self._http.request(method, path, **kw)
            result.calls[name] += 1
            if r.status_code == 429:
                result.rate_limited += 1
                retry_after = float(r.headers.get("retry-after", self._poll))
                await asyncio.sleep(retry_after)
                continue
            r.raise_for_status()
            return r.json()
        raise RuntimeError(f"{name}: still rate limited after {MAX_ATTEMPTS} attempts")

    async def tryon(
        self,
        photo: bytes,
        product_id: str,
        *,
        timeout: float = 120.0,  # noqa: ASYNC109
    ) -> NaiveResult:
        result = NaiveResult(generation_id=None, status="failed", detected_at=0.0)
        uploaded = await self._send(
            result,
            "upload",
            "POST",
            "/images/upload",
            files={"file": ("person.jpg", photo, "image/jpeg")},
        )
        created = await self._send(
            result,
            "create",
            "POST",
            "/try-on",
            json={
                "products": [
                    {
                        "externalId": product_id,
                        "title": "Red tee",
                        "images": [{"source": {"url": self._product_image_url}}],
                    }
                ],
                "person": {"image": {"source": {"id": uploaded["imageId"]}}},
            },
        )
        result.generation_id = created["generationId"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(self._poll)
            gen = await self._send(result, "poll", "GET", f"/generations/{result.generation_id}")
            if gen["status"] in ("COMPLETED", "FAILED"):
                result.detected_at = time.time()
                result.status = gen["status"].lower()
                return result
        result.status = "timeout"
        return result


async def _main(args: argparse.Namespace) -> None:
    from bench._common import photo_bytes

    root = args.base_url.split("/tryon/")[0]
    client = NaiveClient(
        args.base_url,
        args.api_key,
        speed=args.speed,
        product_image_url=f"{root}/_emulator/assets/red-tee.png",
    )
    try:
        results = await asyncio.gather(
            *(client.tryon(photo_bytes(), "naive-tee") for _ in range(args.count))
        )
    finally:
        await client.aclose()
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.calls)
    print(f"{args.count} try-ons: {dict(total)}; {sum(total.values()) / args.count:.2f} calls each")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--count", type=int, default=10)
    asyncio.run(_main(p.parse_args()))
