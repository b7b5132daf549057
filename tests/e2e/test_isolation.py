"""Two apps, two end users each, and every route of the OpenAPI document called with crossed
credentials: the other app's secret key, the other app's publishable key with its own token or
with this app's token, and the other end user's token, on ids taken from app A. Each answer is
401, 403 or 404 (or, for routes addressed by a name the caller chooses, the caller's own
resource), and no answer holds a byte of A's data. A route added to the gateway is in the
OpenAPI document, so it is in this suite without anyone adding it.

A real gateway and worker (processes), the emulator, a webhook receiver, the test database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from service.app import create_app
from service.settings import Settings

from tests.conftest import TEST_REDIS_URL, Emulator
from tests.e2e.conftest import (
    Gateway,
    keys_cli,
    photo_bytes,
    put_product,
    start_gateway,
    upload_photo,
    wait_terminal,
)
from tests.e2e.receiver import Receiver

ADMIN = "ops_isolation_admin_token_0123456789abcdef"
A_PRODUCT = "a-only-tee"
A_TITLE = "A-ONLY product title 5Fq"
A_NOTE = "A-ONLY metadata 8Lk"


def openapi_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation the gateway documents, read from its own app."""
    app = create_app(Settings.from_env({"REDIS_URL": TEST_REDIS_URL}))
    doc = app.openapi_schema.to_schema()
    return sorted(
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    )


OPERATIONS = openapi_operations()

# Path parameters that are opaque ids the gateway gave app A: crossed, they must be refused.
OPAQUE = {"tryon_id", "endpoint_id", "delivery_id", "batch_id", "generation_id", "image_id"}
# Bodies that would be valid for A's own resources (a route not listed gets `{}`).
BODIES: dict[str, Any] = {
    "POST /v1/try-ons": "tryon",
    "POST /v1/sessions": {"externalUserId": "a-u1"},
    "POST /v1/webhook-endpoints": "endpoint",
    "PATCH /v1/webhook-endpoints/{endpoint_id}": {"enabled": False},
    "POST /v1/webhook-endpoints/{endpoint_id}/recover": {"since": 0},
    "POST /v1/webhook-endpoints/{endpoint_id}/rotate-secret": {"overlapSeconds": 0},
    "POST /v1/callback-secret/rotate": {"overlapSeconds": 0},
    "PUT /v1/products/{external_id}": "product",
    "POST /ops/api/pause": {"what": "intake"},
    "POST /ops/api/resume": {"what": "intake"},
}


@dataclass
class World:
    gw: Gateway
    receiver: Receiver
    keys: dict[str, dict[str, Any]]
    tokens: dict[str, str]
    # A's opaque ids and the values of its path parameters.
    params: dict[str, str]
    # Bytes of A's data that no crossed answer may hold.
    secrets: list[str] = field(default_factory=list)

    def client(self, key: str, token: str | None = None) -> httpx.AsyncClient:
        client = self.gw.client(key)
        if token is not None:
            client.headers["X-Tryon-Token"] = token
        return client


@pytest.fixture(scope="module")
def stack(emulator_process: Emulator) -> Iterator[Gateway]:
    gw = start_gateway(
        emulator_process,
        WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
        OPS_ADMIN_TOKENS=f"{ADMIN}=isolation",
        GATEWAY_KEY_CACHE_SECONDS="0",
    )
    yield gw
    gw.stack.stop_all()


async def _populate(
    gw: Gateway, receiver: Receiver, emulator: Emulator, app: str
) -> dict[str, Any]:
    """One app: a product, an endpoint, a callback secret, two users with tokens, a photo and
    a finished try-on (with metadata and deliveries) for each user."""
    made = keys_cli("create", f"Isolation {app}", "--id", f"iso-{app}")
    out: dict[str, Any] = {"keys": made, "tokens": {}, "tryons": {}, "images": {}}
    product = A_PRODUCT if app == "a" else "b-tee"
    async with gw.client(made["secretKey"]) as backend:
        await put_product(backend, emulator, product, title=A_TITLE if app == "a" else "B tee")
        endpoint = (
            await backend.post("/v1/webhook-endpoints", json={"url": receiver.url + f"/{app}"})
        ).json()
        out["endpoint"] = endpoint
        out["callback_secret"] = (await backend.get("/v1/callback-secret")).json()["secret"]
        for user in (f"{app}-u1", f"{app}-u2"):
            r = await backend.post("/v1/sessions", json={"externalUserId": user})
            assert r.status_code == 201, r.text
            out["tokens"][user] = r.json()["token"]
            image_id = await upload_photo(backend, photo_bytes((5, 6, 7)), externalUserId=user)
            out["images"][user] = image_id
            r = await backend.post(
                "/v1/try-ons",
                json={
                    "products": [{"externalId": product}],
                    "person": {"image": {"source": {"id": image_id}}},
                    "externalUserId": user,
                    "metadata": {"note": f"{A_NOTE} {user}" if app == "a" else "b"},
                    "callbackUrl": receiver.url + f"/{app}/cb",
                },
            )
            assert r.status_code == 202, r.text
            out["tryons"][user] = await wait_terminal(backend, r.json()["id"])
        if app == "a":  # a batch of A's, on user a-u1's photo
            r = await backend.post(
                "/v1/batches",
                json={
                    "person": {"image": {"source": {"id": out["images"][f"{app}-u1"]}}},
                    "products": [{"externalId": product}],
                    "externalUserId": f"{app}-u1",
                },
            )
            assert r.status_code == 202, r.text
            out["batch"] = r.json()["id"]
        await asyncio.sleep(0.5)  # deliveries made
        attempts = (await backend.get(f"/v1/webhook-endpoints/{endpoint['id']}/attempts")).json()
        assert attempts, "A's endpoint has deliveries"
        out["delivery"] = attempts[0]["id"]
    return out


@pytest.fixture(scope="module")
async def world(stack: Gateway, emulator_process: Emulator) -> AsyncIterator[World]:
    redis = Redis.from_url(TEST_REDIS_URL)
    await redis.flushdb()
    emulator_process.reset()
    receiver = await Receiver().start()
    try:
        a = await _populate(stack, receiver, emulator_process, "a")
        b = await _populate(stack, receiver, emulator_process, "b")
        u1 = a["tryons"]["a-u1"]
        secrets = [
            a["endpoint"]["id"],
            a["endpoint"]["secret"],
            a["callback_secret"],
            a["delivery"],
            a["batch"],
            A_TITLE,
            A_NOTE,
            *(t["id"] for t in a["tryons"].values()),
            *a["images"].values(),
            *a["tokens"].values(),
            a["keys"]["secretKey"],
            a["keys"]["publishableKey"],
        ]
        if u1.get("result"):
            secrets.append(u1["result"]["imageUrl"])
        yield World(
            gw=stack,
            receiver=receiver,
            keys={"a": a["keys"], "b": b["keys"]},
            tokens={**a["tokens"], **b["tokens"]},
            params={
                "tryon_id": u1["id"],
                # /tryon/v1 names a try-on a generation, by the same id.
                "generation_id": u1["id"],
                "batch_id": a["batch"],
                "image_id": a["images"]["a-u1"],
                "account_id": "default",
                "app": "iso-a",
                "name": "x",
                "endpoint_id": a["endpoint"]["id"],
                "delivery_id": a["delivery"],
                "external_id": A_PRODUCT,
                "external_user_id": "a-u1",
                "image": a["images"]["a-u1"],
                "a_endpoint_secret": a["endpoint"]["secret"],
                "a_callback_secret": a["callback_secret"],
            },
            secrets=secrets,
        )
    finally:
        await receiver.stop()
        await redis.flushdb()
        await redis.aclose()


def attackers(w: World) -> dict[str, httpx.AsyncClient]:
    """Everyone who must not reach app A's user a-u1's data."""
    b, a = w.keys["b"], w.keys["a"]
    return {
        "B's secret key": w.client(b["secretKey"]),
        # Genlook's surface (/tryon/v1) takes the key in `x-api-key`.
        "B's secret key as x-api-key": httpx.AsyncClient(
            base_url=w.gw.url, headers={"x-api-key": b["secretKey"]}, timeout=30.0
        ),
        "B's publishable key and token": w.client(b["publishableKey"], w.tokens["b-u1"]),
        "B's publishable key with A's token": w.client(b["publishableKey"], w.tokens["a-u1"]),
        "A's other user": w.client(a["publishableKey"], w.tokens["a-u2"]),
        "no key": httpx.AsyncClient(base_url=w.gw.url, timeout=30.0),
    }


def body_for(w: World, operation: str) -> dict[str, Any]:
    body = BODIES.get(operation, {})
    if body == "tryon":  # A's product and A's user's photo
        return {
            "products": [{"externalId": A_PRODUCT}],
            "person": {"image": {"source": {"id": w.params["image"]}}},
        }
    if body == "endpoint":
        return {"url": w.receiver.url + "/intruder"}
    if body == "product":
        return {"title": "intruder", "images": [{"source": {"url": w.gw.emulator.root}}]}
    assert isinstance(body, dict)
    return body


async def call(w: World, client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    url = path.format(**w.params)
    operation = f"{method} {path}"
    if operation == "POST /v1/images":
        files = {"file": ("p.jpg", photo_bytes(), "image/jpeg")}
        return await client.post(url, files=files)
    if operation == "GET /v1/try-ons/{tryon_id}/events":
        # An answer that opened the stream would be a leak: read only its start.
        async with client.stream("GET", url, timeout=5.0) as r:
            await r.aread() if r.status_code != 200 else None
            return r
    if method in ("POST", "PUT", "PATCH"):
        return await client.request(method, url, json=body_for(w, operation))
    return await client.request(method, url)


def opaque_params(path: str) -> set[str]:
    return {p for p in OPAQUE if "{" + p + "}" in path}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_crossed_credentials_reach_nothing_of_the_other_app(
    world: World, method: str, path: str
) -> None:
    clients = attackers(world)
    try:
        for who, client in clients.items():
            r = await call(world, client, method, path)
            where = f"{method} {path} as {who}: {r.status_code} {r.text[:300]}"
            assert r.status_code < 500, where
            if opaque_params(path) or path.startswith("/ops/"):
                assert r.status_code in (401, 403, 404), where
            if r.status_code >= 400:
                body = r.json()
                assert set(body) <= {"code", "message", "status", "details"}, where
            text = r.text
            # An id echoed back from the request's own path (Genlook's "Generation 'x' not
            # found.") tells the caller nothing it did not send.
            sent = str(r.request.url)
            leaked = [s for s in world.secrets if s in text and s not in sent]
            assert not leaked, f"{where}: holds {leaked}"
    finally:
        for client in clients.values():
            await client.aclose()


async def test_a_is_intact_after_every_crossed_call(world: World) -> None:
    """Runs after the crossed calls (pytest keeps file order): nothing of A changed."""
    a = world.keys["a"]
    p = world.params
    async with world.client(a["secretKey"]) as backend:
        tryon = await backend.get(f"/v1/try-ons/{p['tryon_id']}")
        assert tryon.status_code == 200
        assert tryon.json()["status"] == "completed"
        assert tryon.json()["metadata"]["note"].startswith(A_NOTE)
        endpoint = (await backend.get(f"/v1/webhook-endpoints/{p['endpoint_id']}")).json()
        assert endpoint["enabled"] is True
        product = (await backend.get(f"/v1/products/{A_PRODUCT}")).json()
        assert product["title"] == A_TITLE
        assert (await backend.get("/v1/callback-secret")).json()["secret"] == p["a_callback_secret"]
        listed = (await backend.get(f"/v1/webhook-endpoints/{p['endpoint_id']}/attempts")).json()
        assert p["delivery_id"] in [d["id"] for d in listed]
    async with world.client(a["publishableKey"], world.tokens["a-u1"]) as own:
        assert (await own.get(f"/v1/try-ons/{p['tryon_id']}")).status_code == 200


async def test_the_suite_covers_the_live_gateways_openapi_document(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.gw.url) as client:
        doc = (await client.get("/docs/openapi.json")).json()
    live = sorted(
        (m.upper(), p)
        for p, ops in doc["paths"].items()
        for m in ops
        if m in ("get", "post", "put", "patch", "delete")
    )
    assert live == OPERATIONS
    assert len(OPERATIONS) >= 38
    assert os.environ.get("PYTEST_XDIST_WORKER") is None  # file order matters (see above)
