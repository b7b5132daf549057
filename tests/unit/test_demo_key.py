"""One demo key: a gateway with no GENLOOK_API_KEY sends the key an emulator started without
`--api-key` accepts (the end-to-end proof, separate processes as compose runs them, is
tests/e2e/test_emulator_standalone.py). The emulator shares the key without importing the
gateway."""

from __future__ import annotations

import ast
from pathlib import Path

from emulator.config import EmulatorConfig
from service.settings import Settings

EMULATOR = Path(__file__).resolve().parents[2] / "emulator"


def test_the_gateways_default_key_is_the_emulators() -> None:
    assert Settings.from_env({}).genlook.resolved_api_key == EmulatorConfig().api_key


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_emulator_imports_nothing_of_the_gateway() -> None:
    for path in sorted(EMULATOR.glob("*.py")):
        if path.name == "__main__.py":  # `python -m emulator` is the CLI's entry point
            continue
        gateway = {m for m in _imports(path) if m.split(".")[0] in ("service", "workers")}
        assert not gateway, (path.name, gateway)
