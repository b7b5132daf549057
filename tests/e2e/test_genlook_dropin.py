"""An integration written for Genlook, switched to the gateway by its two variables only.

`GenlookIntegration` below is how Genlook's example app (GenlookLabs/virtual-try-on-api-example)
talks to Genlook, in Python: raw HTTP with `x-api-key`, `POST /try-on/sync` (202 -> poll
`GET /generations/:id` every 2 s), reference the product by `externalId` first and register it
(multipart `POST /products` with the image bytes) on `404 PRODUCT_NOT_FOUND`, errors read from
`code`. It knows nothing of the gateway: it is configured by GENLOOK_BASE_URL and
GENLOOK_API_KEY, which here point at the gateway's `/tryon/v1` and an app's secret key made by
`tryon-gateway keys create`.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Emulator
from tests.e2e.conftest import Gateway, keys_cli, stack_fixture

POLL_SECONDS = 2.0 / 100  # Genlook's 2 s, on the emulator's faster clock


class GenlookApiError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class GenlookIntegration:
    """A shop's backend, as Genlook's docs and example app show it."""

    def __init__(self, env: dict[str, str]) -> None:
        self._base = env.get("GENLOOK_BASE_URL", "https://api.genlook.app/tryon/v1")
        self._key = env["GENLOOK_API_KEY"]

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=100) as http:
            r = await http.request(
                method, f"{self._base}{path}", headers={"x-api-key": self._key}, **kw
            )
        if r.status_code >= 400:
            payload = r.json()
            raise GenlookApiError(payload.get("code", "UNKNOWN"), payload["message"], r.status_code)
        return r

    async def upload(self, photo: bytes) -> str:
        r = await self._call(
            "POST", "/images/upload", files={"file": ("me.jpg", photo, "image/jpeg")}
        )
        image_id: str = r.json()["imageId"]
        return image_id

    async def register_product(self, external_id: str, title: str, image: bytes) -> None:
        data = {
            "externalId": external_id,
            "title": title,
            "description": "Soft cotton tee",
            "images": [{"source": {"fileKey": "product"}}],
        }
        await self._call(
            "POST",
            "/products",
            data={"data": json.dumps(data)},
            files={"product": ("tee.png", image, "image/png")},
        )

    async def try_on_sync(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await self._call("POST", "/try-on/sync", json=body)
        return r.status_code, r.json()

    async def try_on(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = (await self._call("POST", "/try-on", json=body)).json()
        return result

    async def wait_for(self, generation_id: str, within: float = 60) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            status: dict[str, Any] = (
                await self._call("GET", f"/generations/{generation_id}")
            ).json()
            if status["status"] in ("COMPLETED", "FAILED"):
                return status
            await asyncio.sleep(POLL_SECONDS)
        raise TimeoutError(generation_id)

    async def try_on_product(
        self, external_id: str, image_id: str, product_image: bytes
    ) -> dict[str, Any]:
        """Reference first; on PRODUCT_NOT_FOUND register the product and retry; 202 -> poll."""
        body = {
            "products": [{"externalId": external_id}],
            "person": {"image": {"source": {"id": image_id}}},
        }
        try:
            status, result = await self.try_on_sync(body)
        except GenlookApiError as exc:
            if exc.code != "PRODUCT_NOT_FOUND":
                raise
            await self.register_product(external_id, "Red tee", product_image)
            status, result = await self.try_on_sync(body)
        if status == 202:
            result = await self.wait_for(result["generationId"])
        return result


def person_photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 500), (190, 150, 120)).save(out, "JPEG")
    return out.getvalue()


stack = stack_fixture()


async def test_a_genlook_integration_runs_against_the_gateway(
    stack: Gateway, emulator_process: Emulator, redis: Any
) -> None:
    emulator_process.reset(credits=1000)
    made = keys_cli("create", "Genlook shop", "--id", "genlookshop")
    shop = GenlookIntegration(
        {"GENLOOK_BASE_URL": f"{stack.url}/tryon/v1", "GENLOOK_API_KEY": made["secretKey"]}
    )
    async with httpx.AsyncClient(timeout=30) as plain:
        tee = (await plain.get(f"{emulator_process.root}/_emulator/assets/red-tee.png")).content

    # Only the app's secret key opens Genlook's API: not its publishable key.
    browser = GenlookIntegration(
        {"GENLOOK_BASE_URL": f"{stack.url}/tryon/v1", "GENLOOK_API_KEY": made["publishableKey"]}
    )
    with pytest.raises(GenlookApiError) as refused:
        await browser.upload(person_photo())
    assert (refused.value.status, refused.value.code) == (401, "INVALID_API_KEY")

    image_id = await shop.upload(person_photo())
    # Unknown product: 404 PRODUCT_NOT_FOUND, registered with its bytes, then rendered.
    first = await shop.try_on_product("tee-42", image_id, tee)
    assert first["status"] == "COMPLETED", first
    async with httpx.AsyncClient(timeout=30) as plain:
        assert (await plain.get(first["resultImageUrl"])).status_code == 200
    # Known now: the reference alone works (no second registration).
    second = await shop.try_on_product("tee-42", image_id, b"unused")
    assert second["status"] == "COMPLETED"
    assert second["generationId"] != first["generationId"]

    # The async form: start, then poll GET /generations/:id until COMPLETED.
    started = await shop.try_on(
        {"products": [{"externalId": "tee-42"}], "person": {"image": {"source": {"id": image_id}}}}
    )
    assert started["status"] == "PENDING"
    assert started["productExternalId"] == "tee-42"
    assert (await shop.wait_for(started["generationId"]))["status"] == "COMPLETED"
    # The generation is the gateway's try-on, on its native API too.
    async with httpx.AsyncClient(
        base_url=stack.url, headers={"Authorization": f"Bearer {made['secretKey']}"}, timeout=30
    ) as native:
        r = await native.get(f"/v1/try-ons/{started['generationId']}")
        assert r.status_code == 200
        assert r.json()["status"] == "completed"

    # Out of credits: 402 INSUFFICIENT_CREDITS, as Genlook answers, once the gateway knows.
    emulator_process.reset(credits=0)
    async with httpx.AsyncClient(timeout=30) as plain:
        r = await plain.get(
            f"{stack.url}/tryon/v1/account/credits", headers={"x-api-key": made["secretKey"]}
        )
        assert r.json() == {"creditBalance": 0}
    with pytest.raises(GenlookApiError) as info:
        await shop.try_on_product("tee-42", image_id, tee)
    assert (info.value.status, info.value.code) == (402, "INSUFFICIENT_CREDITS")
    # Topped up: the gateway accepts again once it has read the balance (workers read it
    # every minute; a balance read here is at most 5 s old).
    emulator_process.reset()
    async with httpx.AsyncClient(timeout=30) as plain:
        for _ in range(100):
            r = await plain.get(
                f"{stack.url}/tryon/v1/account/credits", headers={"x-api-key": made["secretKey"]}
            )
            if r.json()["creditBalance"] > 0:
                break
            await asyncio.sleep(0.1)
    assert (await shop.try_on_product("tee-42", image_id, tee))["status"] == "COMPLETED"


async def test_an_apps_daily_cap_answers_as_genlook_402(
    stack: Gateway, emulator_process: Emulator, redis: Any
) -> None:
    """A gateway-only limit maps to the nearest Genlook code: a full daily cap is 402."""
    emulator_process.reset()
    made = keys_cli("create", "Capped shop", "--id", "cappedshop")
    keys_cli("policy", "cappedshop", "--daily-cap", "1")
    shop = GenlookIntegration(
        {"GENLOOK_BASE_URL": f"{stack.url}/tryon/v1", "GENLOOK_API_KEY": made["secretKey"]}
    )
    async with httpx.AsyncClient(timeout=30) as plain:
        tee = (await plain.get(f"{emulator_process.root}/_emulator/assets/red-tee.png")).content
    image_id = await shop.upload(person_photo())
    assert (await shop.try_on_product("capped-tee", image_id, tee))["status"] == "COMPLETED"
    with pytest.raises(GenlookApiError) as info:
        await shop.try_on_product("capped-tee", image_id, tee)
    assert (info.value.status, info.value.code) == (402, "INSUFFICIENT_CREDITS")
