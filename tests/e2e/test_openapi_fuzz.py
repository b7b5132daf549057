"""schemathesis over the whole OpenAPI document, against a real gateway (subprocess), a worker,
the emulator and the test Redis database: every operation, with requests generated from the
document (valid and invalid), once with a browser's credentials (publishable key + an end-user
token minted by POST /v1/sessions) and once with a server's (the secret key; the admin token on
the ops API). Every answer must be no 5xx, a status the operation documents, with the
documented content type and a body its schema accepts (issue 12, item 7). Generated ids find
nothing, so every route taking an id is also called with real ones and checked the same way.

Bounded for CI: a fixed number of examples per operation and a fixed seed (derandomize), so a
run sends the same requests every time (about 40 s here). Nothing is excluded: a generated
`?wait` or SSE stream only holds on a try-on that exists and is not finished, and generated ids
never exist, while the real try-on is finished before it is read. Not fuzzed: the multipart
form of POST /v1/try-ons (the document gives its JSON form), and the routes the document leaves
out (`/metrics`, the SDK and the dashboard and demo pages).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service.app import create_app
from service.settings import Settings

from tests.conftest import TEST_REDIS_URL, Emulator
from tests.e2e.conftest import Gateway, keys_cli, photo_bytes, product_url, start_gateway

ORIGIN = "https://shop.example"
ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
SETTINGS = {
    "OPS_ADMIN_TOKENS": f"{ADMIN_TOKEN}=fuzz",
    "GATEWAY_DEMO_APP": "demo",
    # The webhook endpoint of test_answers_about_real_resources (nothing listens there).
    "WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
}
HOOK_URL = "http://127.0.0.1:9/hook"
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


class Target:
    """The running gateway and the two sets of credentials the runs use."""

    def __init__(self, gateway: Gateway, made: dict[str, Any], token: str) -> None:
        self.gateway = gateway
        # The secret key also as Genlook's `x-api-key`, for the routes at /tryon/v1.
        self.server = {
            "Authorization": f"Bearer {made['secretKey']}",
            "x-api-key": made["secretKey"],
        }
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self.browser = {
            "Authorization": f"Bearer {made['publishableKey']}",
            "X-Tryon-Token": token,
            "Origin": ORIGIN,
        }


@pytest.fixture(scope="module")
def target(emulator_process: Emulator) -> Iterator[Target]:
    store = redis.Redis.from_url(TEST_REDIS_URL)
    store.flushdb()
    gateway = start_gateway(emulator_process, **SETTINGS)
    try:
        # Limits high enough that the run itself never fills one (a 429 is documented, but
        # every later request of the run would then test nothing else).
        made = keys_cli(
            "create",
            "Shop",
            "--id",
            "fuzzshop",
            "--origin",
            ORIGIN,
            "--user-rate",
            "100000",
            "--ip-rate",
            "100000",
            "--app-rate",
            "100000",
            "--upload-rate",
            "100000",
        )
        keys_cli("create", "Demo", "--id", "demo")  # GATEWAY_DEMO_APP: /demo/session works
        server = {"Authorization": f"Bearer {made['secretKey']}"}
        with httpx.Client(base_url=gateway.url, headers=server, timeout=30) as client:
            r = client.put(
                "/v1/products/tee",
                json={
                    "title": "Tee",
                    "images": [{"source": {"url": product_url(gateway.emulator)}}],
                },
            )
            assert r.status_code in (200, 201), r.text
            r = client.post(
                "/v1/sessions",
                json={"externalUserId": "fuzz-user", "expiresInMinutes": 60, "maxTryOns": 1000},
            )
            assert r.status_code == 201, r.text
            token = r.json()["token"]
            assert client.get("/docs/openapi.json").json() == DOCUMENT
        yield Target(gateway, made, token)
    finally:
        gateway.stack.stop_all()
        store.flushdb()
        store.close()


def _document() -> dict[str, Any]:
    """The app's own document, built in process at collection (schemathesis's lazy loader from
    a fixture does not run on pytest 9); the `target` fixture checks the gateway serves it."""
    built = create_app(Settings.from_env(SETTINGS)).openapi_schema.to_schema()
    # As served: the spec objects hold Structs (examples, defaults) until encoded.
    document: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(built))
    return document


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def _call(case: Any, target: Target, headers: dict[str, str]) -> None:
    case.call_and_validate(base_url=target.gateway.url, headers=headers, checks=CHECKS, timeout=90)


@pytest.mark.slow
@schema.parametrize()
@FUZZ_SETTINGS
def test_browser_credentials(case: Any, target: Target) -> None:
    _call(case, target, target.browser)


# After the browser run: its pause of intake or processing would leave the browser's try-ons
# nothing to test but 503 INTAKE_PAUSED.
@pytest.mark.slow
@schema.parametrize()
@FUZZ_SETTINGS
def test_server_credentials(case: Any, target: Target) -> None:
    admin = case.path.startswith("/ops/")
    _call(case, target, target.admin if admin else target.server)


def _terminal(client: httpx.Client, tryon_id: str) -> None:
    for _ in range(10):
        r = client.get(f"/v1/try-ons/{tryon_id}", params={"wait": 10})
        if r.json()["status"] in ("completed", "failed", "canceled"):
            return
    raise AssertionError(f"try-on {tryon_id} is still {r.json()['status']}")


def _first_delivery(client: httpx.Client, tryon_id: str) -> str:
    # The terminal event's deliveries are written just after the state (the outbox).
    for _ in range(100):
        found = client.get(f"/v1/try-ons/{tryon_id}/deliveries").json()
        if found:
            delivery: str = found[0]["id"]
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"no delivery for try-on {tryon_id}")


@pytest.mark.slow
def test_answers_about_real_resources(target: Target) -> None:
    """Generated ids only ever find nothing (404): every route that takes an id is also called
    with real ones (a finished try-on, its delivery, a webhook endpoint, a product), and its
    answer checked against the document the same way (success bodies, the SSE stream)."""
    with httpx.Client(base_url=target.gateway.url, headers=target.server, timeout=30) as client:
        r = client.post("/v1/webhook-endpoints", json={"url": HOOK_URL})
        assert r.status_code == 201, r.text
        endpoint = r.json()["id"]
        r = client.post("/v1/images", files={"file": ("me.jpg", photo_bytes(), "image/jpeg")})
        assert r.status_code == 201, r.text
        person = {"image": {"source": {"id": r.json()["id"]}}}
        tryon = {"products": [{"externalId": "tee"}], "person": person}
        r = client.post("/v1/try-ons", json={**tryon, "externalUserId": "fuzz-user"})
        assert r.status_code == 202, r.text
        tryon_id = r.json()["id"]
        _terminal(client, tryon_id)
        delivery = _first_delivery(client, tryon_id)
        r = client.post("/v1/batches", json={"person": person, "products": [{"externalId": "tee"}]})
        assert r.status_code == 202, r.text
        batch_id = r.json()["id"]
        _terminal(client, r.json()["tryons"][0]["id"])  # the batch is completed with it
    ids = {
        "tryon_id": tryon_id,
        "endpoint_id": endpoint,
        "delivery_id": delivery,
        "batch_id": batch_id,
    }
    product = {"images": [{"source": {"url": product_url(target.gateway.emulator)}}]}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/try-ons/{tryon_id}", {}),
        ("GET", "/v1/try-ons/{tryon_id}", {"query": {"wait": 1}}),
        ("GET", "/v1/try-ons/{tryon_id}/events", {}),
        ("GET", "/v1/try-ons/{tryon_id}/deliveries", {}),
        ("DELETE", "/v1/try-ons/{tryon_id}", {}),
        ("GET", "/v1/batches/{batch_id}", {}),
        ("GET", "/v1/batches/{batch_id}/events", {}),
        ("DELETE", "/v1/batches/{batch_id}", {}),
        ("PUT", "/v1/products/{external_id}", {"body": product}),
        ("GET", "/v1/products/{external_id}", {}),
        ("DELETE", "/v1/products/{external_id}", {}),
        ("GET", "/v1/webhook-endpoints/{endpoint_id}", {}),
        ("PATCH", "/v1/webhook-endpoints/{endpoint_id}", {"body": {"description": "fuzz"}}),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret", {}),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/test", {}),
        ("GET", "/v1/webhook-endpoints/{endpoint_id}/attempts", {}),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend", {}),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover", {"body": {"since": 0}}),
        ("GET", "/ops/api/tryons/{tryon_id}", {}),
        ("POST", "/ops/api/tryons/{tryon_id}/retry", {}),
        ("POST", "/ops/api/tryons/{tryon_id}/discard", {}),
        ("GET", "/ops/api/deliveries/{delivery_id}", {}),
        ("POST", "/ops/api/deliveries/{delivery_id}/resend", {}),
        ("DELETE", "/v1/webhook-endpoints/{endpoint_id}", {}),
        ("DELETE", "/v1/customers/{external_user_id}", {}),
    ]
    # A browser reads its own try-on, as JSON and as a stream (before the user is erased).
    for path in ("/v1/try-ons/{tryon_id}", "/v1/try-ons/{tryon_id}/events"):
        case = schema[path]["GET"].Case(path_parameters={"tryon_id": tryon_id})
        _call(case, target, target.browser)
    values = {**ids, "external_id": "fuzz-tee", "external_user_id": "fuzz-user"}
    for method, path, given in calls:
        params = {name: values[name] for name in re.findall(r"{(\w+)}", path)}
        case = schema[path][method].Case(path_parameters=params, **given)
        _call(case, target, target.admin if path.startswith("/ops/") else target.server)
