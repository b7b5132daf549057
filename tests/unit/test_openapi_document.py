"""The OpenAPI document describes the gateway's errors and credentials (issue 12, item 7).

The document is built in process from the app's routes (nothing is served); that the running
gateway keeps to it is tests/e2e/test_openapi_fuzz.py's job.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from service.app import create_app
from service.settings import Settings

ENVELOPE = "#/components/schemas/ErrorBody"


def build() -> dict[str, Any]:
    app = create_app(Settings.from_env({"GATEWAY_DEMO_APP": "demo"}))
    # Encoded as served: the spec objects hold Structs (defaults) until then.
    schema: dict[str, Any] = msgspec.json.decode(
        msgspec.json.encode(app.openapi_schema.to_schema())
    )
    return schema


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    ]


def test_every_error_is_the_one_envelope(document: dict[str, Any]) -> None:
    wrong = []
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400 or (path, status) == ("/readyz", "503"):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") != ENVELOPE:
                wrong.append(f"{method} {path} {status}: {schema}")
    assert not wrong, "\n".join(wrong)


def test_envelope_schema_is_the_wire_shape(document: dict[str, Any]) -> None:
    envelope = document["components"]["schemas"]["ErrorBody"]
    assert set(envelope["properties"]) == {"code", "message", "status", "details"}
    assert set(envelope["required"]) == {"code", "message", "status"}


def test_routes_behind_a_credential_say_which_and_its_errors(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["secretKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sk_...",
        "description": schemes["secretKey"]["description"],
    }
    assert schemes["endUserToken"]["in"] == "header"
    assert schemes["endUserToken"]["name"] == "X-Tryon-Token"
    missing = []
    for method, path, op in operations(document):
        if not path.startswith(("/v1/", "/ops/api/")):
            continue
        if path.startswith("/v1/results/"):
            continue  # the signed link is its own credential (service/api/results.py)
        security = op.get("security")
        if not security:
            missing.append(f"{method} {path}: no security")
            continue
        for name in {n for requirement in security for n in requirement}:
            assert name in schemes, (method, path, name)
        for status in ("401", "403", "503"):
            if status not in op["responses"]:
                missing.append(f"{method} {path}: no {status}")
    assert not missing, "\n".join(missing)


def test_genlook_routes_take_x_api_key_and_say_their_errors(document: dict[str, Any]) -> None:
    """Genlook's API at /tryon/v1: its own tag, the app's secret key as `x-api-key`, every
    error in the one envelope (test_every_error_is_the_one_envelope)."""
    assert document["components"]["securitySchemes"]["genlookApiKey"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
        "description": document["components"]["securitySchemes"]["genlookApiKey"]["description"],
    }
    keyless = {"/tryon/v1/previews/{image_id}", "/tryon/v1/product-images/{name}"}
    found = [(m, p, op) for m, p, op in operations(document) if p.startswith("/tryon/v1/")]
    assert len(found) == 12
    for method, path, op in found:
        assert op["tags"] == ["genlook-compat"], (method, path)
        if path in keyless:  # the signed link is the credential
            assert not op.get("security"), (method, path)
            assert {"403", "404"} <= set(op["responses"]), (method, path)
            continue
        assert op["security"] == [{"genlookApiKey": []}], (method, path)
        assert {"401", "429", "503"} <= set(op["responses"]), (method, path)


def test_browser_safe_routes_accept_a_publishable_key_and_token(document: dict[str, Any]) -> None:
    browser = {
        (method, path)
        for method, path, op in operations(document)
        if {"publishableKey": [], "endUserToken": []} in op.get("security", [])
    }
    assert browser == {
        ("POST", "/v1/try-ons"),
        ("GET", "/v1/try-ons/{tryon_id}"),
        ("GET", "/v1/try-ons/{tryon_id}/events"),
        ("DELETE", "/v1/try-ons/{tryon_id}"),
        ("POST", "/v1/images"),
    }
    for method, path in browser:
        assert "429" in document["paths"][path][method.lower()]["responses"]


def test_every_build_is_the_same_document(document: dict[str, Any]) -> None:
    # Generated examples made each gateway process serve different random values (and strings
    # where the schema says numbers).
    assert build() == document


def test_every_body_a_route_reads_is_documented(document: dict[str, Any]) -> None:
    bodies = {
        (method, path): next(iter(op["requestBody"]["content"].items()))
        for method, path, op in operations(document)
        if "requestBody" in op
    }
    assert {key: media for key, (media, _) in bodies.items()} == {
        ("POST", "/v1/try-ons"): "application/json",
        ("POST", "/v1/batches"): "application/json",
        ("POST", "/v1/images"): "multipart/form-data",
        ("POST", "/v1/sessions"): "application/json",
        ("PUT", "/v1/products/{external_id}"): "application/json",
        ("POST", "/v1/webhook-endpoints"): "application/json",
        ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "application/json",
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "application/json",
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"): "application/json",
        ("POST", "/v1/callback-secret/rotate"): "application/json",
        ("POST", "/ops/api/pause"): "application/json",
        ("POST", "/ops/api/resume"): "application/json",
        ("POST", "/ops/api/accounts"): "application/json",
        ("PATCH", "/ops/api/accounts/{account_id}"): "application/json",
        ("PUT", "/ops/api/apps/{app}/accounts"): "application/json",
        ("POST", "/demo/session"): "application/json",
        ("POST", "/tryon/v1/images/upload"): "multipart/form-data",
        ("POST", "/tryon/v1/products"): "application/json",
        ("POST", "/tryon/v1/try-on"): "application/json",
        ("POST", "/tryon/v1/try-on/sync"): "application/json",
    }
    create = bodies[("POST", "/v1/try-ons")][1]["schema"]["$ref"]
    assert create == "#/components/schemas/TryOnCreate"
    image = document["components"]["schemas"]["ImageForm"]
    assert image["required"] == ["file"]
    assert image["properties"]["file"]["format"] == "binary"


def test_a_documented_body_is_read_only_by_its_handler() -> None:
    # The dependency that documents a body is never resolved: the hot create route still runs
    # no dependency at all (service/api/deps.py), and nothing parses the body before it.
    app = create_app(Settings.from_env({}))
    route = next(r for r in app.routes if r.path == "/v1/try-ons")
    _, kwargs_model = route.route_handler_map["POST"]
    assert kwargs_model.dependency_batches == []


def test_a_body_that_may_be_left_out_is_optional(document: dict[str, Any]) -> None:
    # Found by schemathesis (negative_data_rejection): a rotation without a body keeps the
    # default overlap and answers 200, while the document said a body was required.
    optional = {
        (method, path)
        for method, path, op in operations(document)
        if "requestBody" in op and not op["requestBody"].get("required", False)
    }
    assert optional == {
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
        ("POST", "/v1/callback-secret/rotate"),
    }
