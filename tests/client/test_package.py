"""The client is a package of its own for backends: it depends on httpx, msgspec and
standardwebhooks, and importing it loads nothing of the gateway's server stack."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_STACK = {"service", "workers", "emulator", "litestar", "redis", "arq", "uvicorn", "PIL"}


def test_it_declares_only_its_three_dependencies() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert names == {"httpx", "msgspec", "standardwebhooks"}


def test_importing_it_loads_no_server_module() -> None:
    probe = (
        "import json, sys, tryon_client, tryon_client.webhooks;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert not loaded & SERVER_STACK, loaded & SERVER_STACK
