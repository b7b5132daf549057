"""The docs state only what the code does, where a machine can check it: every environment
variable they name is read by settings (and every setting is in deploy/.env.example, checked
in tests/deploy), every `tryon-gateway` command they name exists, every gateway route they
name is served, with the method they give it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from litestar.routes import HTTPRoute
from service.app import create_app
from service.cli import build_parser
from service.settings import GatewaySettings, Settings

from tests.settings_env import setting_names, setting_prefixes

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
# Configuration files that list variables for the processes: settings must read each one.
CONFIG = [
    ROOT / "deploy" / ".env.example",
    ROOT / "deploy" / "compose.yaml",
    *sorted((ROOT / "deploy" / "k8s").glob("*.yaml")),
]

# Names with a settings prefix that settings does not read, each with the file that does.
NOT_SETTINGS = {
    "OPS_ADMIN_TOKEN": "service/cli.py",  # `tryon-gateway ops`' token, not the gateway's
    "GATEWAY_PUBLISH": "deploy/compose.yaml",  # compose's published address
    "WEBHOOK_SECRET": "docs/examples/webhook_receiver.py",  # a receiver's own variable
}
# The route prefixes the gateway serves; other paths in the docs are Genlook's or files.
GATEWAY_PATHS = ("/v1/", "/ops", "/healthz", "/readyz", "/metrics", "/demo", "/docs", "/sdk/")
# A code span that starts with a route: `GET /v1/try-ons/{id}`, `/healthz`, `/v1/images`.
ROUTE_SPAN = re.compile(r"`(?:(GET|POST|PUT|PATCH|DELETE) )?(/[^`\s?]*)[^`]*`")
# A command line: at the start of a code line or span, after a prompt or `uv run`.
COMMAND = re.compile(r"(?:^|(?<=`)|(?<=\$ )|(?<=run ))tryon-gateway((?: [a-z][a-z-]*)+)", re.M)
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)


def _text(paths: list[Path]) -> str:
    return "\n".join(p.read_text() for p in paths)


def _variables(text: str) -> set[str]:
    prefixes = "|".join(sorted(setting_prefixes()))
    return set(re.findall(rf"\b(?:{prefixes})[A-Z0-9_]*[A-Z0-9]\b", text))


def test_the_variables_named_are_the_settings() -> None:
    named = _variables(_text(DOCS + CONFIG))
    assert named, "no variable found"
    unknown = named - setting_names() - set(NOT_SETTINGS)
    assert not unknown, f"named in the docs or deploy/ but read by no setting: {sorted(unknown)}"
    for name, reader in NOT_SETTINGS.items():
        assert name in (ROOT / reader).read_text(), (name, reader)
        assert name not in setting_names(), f"{name} is a setting now: drop it from NOT_SETTINGS"


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> set[tuple[str, ...]]:
    found = {prefix}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found |= _commands(child, (*prefix, name))
    return found


def test_every_command_named_exists() -> None:
    commands = _commands(build_parser())
    code = "\n".join(CODE.findall(_text(DOCS)))
    named = set()
    for words in COMMAND.findall(code):
        # `tryon-gateway keys create --id shop`: the command and, if it has subcommands, the
        # subcommand; what follows are arguments.
        parts = tuple(words.split())
        has_subcommands = any(len(c) > 1 and c[0] == parts[0] for c in commands)
        named.add(parts[:2] if has_subcommands and len(parts) > 1 else parts[:1])
    assert len(named) > 10, named
    missing = named - commands
    assert not missing, f"commands named in the docs that the CLI lacks: {sorted(missing)}"


def _served() -> dict[str, tuple[re.Pattern[str], set[str]]]:
    # With a demo app so that /demo is routed, as `tryon-gateway dev` runs it.
    app = create_app(Settings(gateway=GatewaySettings(demo_app="shop")))
    schema_paths = set(app.openapi_schema.paths or {})
    served = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", route.path)
        served[route.path] = (re.compile(f"^{pattern}$"), set(route.methods))
    # Every API route is in the OpenAPI document; what is not there is the ops page, the demo,
    # /metrics, the docs and the SDK.
    plain = {re.sub(r":[a-z]+\}", "}", p) for p in served}
    assert schema_paths <= plain, schema_paths - plain
    return served


def _route_mentions() -> set[tuple[str, str]]:
    found = set()
    for method, raw in ROUTE_SPAN.findall(_text(DOCS)):
        path = raw.rstrip(".,;:)")
        # `/v1/`, `/v1/*`, `/ops/api/...` name a part of the API, not a route.
        if path.startswith(GATEWAY_PATHS) and not re.search(r"(/|\*|\.\.\.|…)$", path):
            found.add((method, path))
    return found


def test_every_route_named_is_served() -> None:
    served = _served()
    mentions = _route_mentions()
    assert len(mentions) > 20, mentions
    wrong = []
    for method, path in sorted(mentions):
        methods = [m for pattern, m in served.values() if pattern.match(path)]
        # `/ops/api` names the API the ops routes live under.
        under = not method and any(route.startswith(path + "/") for route in served)
        if not (methods or under) or (method and not any(method in m for m in methods)):
            wrong.append(f"{method} {path}".strip())
    assert not wrong, f"routes named in the docs that the gateway does not serve: {wrong}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("`GET /v1/try-ons/{id}` answers", {("GET", "/v1/try-ons/{id}")}),
        ("see `/healthz`.", {("", "/healthz")}),
        ("`/tryon/v1/try-on` is Genlook's", set()),
    ],
)
def test_route_mentions_are_read_as_meant(text: str, expected: set[tuple[str, str]]) -> None:
    found = {
        (m, p)
        for m, p in ROUTE_SPAN.findall(text)
        if p.startswith(GATEWAY_PATHS) and not p.endswith("/")
    }
    assert found == expected


def test_every_benchmark_and_its_database_is_documented() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    for module in sorted((ROOT / "bench").glob("*.py")):
        source = module.read_text()
        if '__name__ == "__main__"' in source:
            assert f"bench/{module.name}" in doc, module.name
        for db in re.findall(r"redis://127\.0\.0\.1:6379/(\d+)\"", source):
            assert f"database {db}" in doc, (module.name, db)
