"""schemathesis over the whole OpenAPI document, against a real gateway (subprocess), a worker,
the emulator and the test Redis database: every operation, with requests generated from the
document (valid and invalid), once with a server's credentials (the secret key; the admin
token on the ops API) and once with a browser's (publishable key + an end-user token minted by
POST /v1/sessions). Every answer must be no 5xx, a status the operation documents, with the
documented content type and a body its schema accepts (issue 12, item 7).

Bounded for CI: a fixed number of examples per operation and a fixed seed (derandomize), so a
run is the same requests every time. Long-polls are cut short by the request timeout only if
the gateway broke its own `?wait` cap; an SSE stream of a try-on that does not exist answers 404
at once, and one that exists ends at its terminal state.
"""

from __future__ import annotations

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
from tests.e2e.conftest import Gateway, keys_cli, product_url, start_gateway

ORIGIN = "https://shop.example"
ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
SETTINGS = {"OPS_ADMIN_TOKENS": f"{ADMIN_TOKEN}=fuzz", "GATEWAY_DEMO_APP": "demo"}
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
        self.server = {"Authorization": f"Bearer {made['secretKey']}"}
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
