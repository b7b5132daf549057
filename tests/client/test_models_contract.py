"""The client's models say what the gateway's OpenAPI document says, field by field.

The client mirrors the wire shapes without importing the server (a backend installs it alone),
so this test is what keeps the two in step: same JSON names, same required fields, same types.
The document is built in process from the app's routes, as tests/unit/test_openapi_document.py
builds it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from service.app import create_app
from service.settings import Settings

from tryon_client.models import SCHEMA_NAMES


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings.from_env({}))
    decoded: dict[str, Any] = msgspec.json.decode(
        msgspec.json.encode(app.openapi_schema.to_schema())
    )
    return decoded


@pytest.fixture(scope="module")
def gateway_schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def reachable(node: Any, schemas: dict[str, Any], found: set[str]) -> set[str]:
    """The component schemas `node` refers to, directly or through others."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[-1]
            if name not in found:
                found.add(name)
                reachable(schemas[name], schemas, found)
        for value in node.values():
            reachable(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            reachable(value, schemas, found)
    return found


def shape(schema: dict[str, Any], names: dict[str, str]) -> Any:
    """A schema reduced to what both generators agree on: types, enums, items, references."""
    for union in ("anyOf", "oneOf"):
        if union in schema:
            # Nested unions (an enum is a union of its values) merge into one.
            members = [shape(s, names) for s in schema[union]]
            return frozenset().union(*(m if isinstance(m, frozenset) else {m} for m in members))
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        return ("ref", names.get(ref, ref))
    if "enum" in schema:
        return frozenset(("enum", v) for v in schema["enum"] if v is not None) | (
            frozenset({("null",)}) if None in schema["enum"] else frozenset()
        )
    kind = schema.get("type")
    if isinstance(kind, list):
        return frozenset(shape({**schema, "type": k}, names) for k in kind)
    if kind == "array":
        return ("array", shape(schema.get("items", {}), names))
    if kind == "object" and "properties" not in schema:
        # `dict[str, Any]`: one generator omits additionalProperties, the other writes {}.
        return ("map", shape(schema.get("additionalProperties") or {}, names))
    return (kind,) if kind else ("any",)


def flat(value: Any) -> Any:
    """A one-member union is its member (one generator writes `oneOf: [x]`, the other `x`)."""
    if isinstance(value, frozenset) and len(value) == 1:
        return flat(next(iter(value)))
    return value


@pytest.mark.parametrize("model", list(SCHEMA_NAMES), ids=lambda m: m.__name__)
def test_model_matches_the_gateway_schema(
    model: type[msgspec.Struct], gateway_schemas: dict[str, Any]
) -> None:
    name = SCHEMA_NAMES[model]
    (ref,), components = msgspec.json.schema_components([model])
    client = components[ref["$ref"].rsplit("/", 1)[-1]]
    gateway = gateway_schemas[name]
    # The client's class names map to the gateway's schema names.
    to_gateway = {m.__name__: n for m, n in SCHEMA_NAMES.items()}

    assert set(client["properties"]) == set(gateway["properties"]), name
    assert set(client.get("required", [])) == set(gateway.get("required", [])), name
    for prop, gateway_prop in gateway["properties"].items():
        client_shape = flat(shape(client["properties"][prop], to_gateway))
        assert client_shape == flat(shape(gateway_prop, {})), f"{name}.{prop}"


def test_every_public_schema_of_the_v1_api_is_mirrored(
    document: dict[str, Any], gateway_schemas: dict[str, Any]
) -> None:
    """Every schema the native `/v1` routes use is mirrored (the ops API's, `/tryon/v1`'s
    Genlook shapes and the health checks' are not the client's)."""
    native = {path: item for path, item in document["paths"].items() if path.startswith("/v1/")}
    used = reachable(native, gateway_schemas, set())
    # The multipart form of an upload: the client sends a file, not this shape.
    not_client = {"ImageForm"}
    assert used - not_client == set(SCHEMA_NAMES.values())
