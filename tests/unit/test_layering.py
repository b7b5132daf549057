"""Imports run downward: every module of service/ and workers/ sits in one layer, and imports
only from its own layer or the layers below. Read from the source with ast (nothing is
imported), so a lazy import inside a function counts as much as one at the top.

A new module must be placed in LAYERS; a module that needs something from above takes it as a
parameter instead (as service/tryons/erase.py takes the resources it reaches).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first: (layer, module prefixes, whether its groups may import each other). A prefix
# names a module or a package (its modules too), except `service`, which names only itself
# (its modules are placed one by one); the longest matching prefix places a module.
LAYERS: list[tuple[str, tuple[str, ...], bool]] = [
    (
        "leaves",
        (
            "service",  # the package itself
            "service.accounts.crypto",
            "service.admin_tokens",
            "service.byte_budget",
            "service.container",
            "service.domain_errors",
            "service.errors",
            "service.gc_tuning",
            "service.genlook",
            "service.identifiers",
            "service.jobs",
            "service.keys",
            "service.lanes",
            "service.logs",
            "service.namespacing",
            "service.redis_conn",
            "service.retrying",
        ),
        True,
    ),
    ("settings", ("service.settings", "service.redis_client"), True),
    (
        "domain",
        (
            "service.access",
            "service.accounts",
            "service.auth",
            "service.autopipeline",
            "service.batches",
            "service.budget",
            "service.demo",
            "service.events",
            "service.genlook_compat",
            "service.imaging",
            "service.metrics",
            "service.ops",
            "service.photos",
            "service.products",
            "service.results",
            "service.tryons",
            "service.upstream",
            "service.usage",
            "service.webhooks",
        ),
        True,
    ),
    ("wiring", ("service.resources",), True),
    # The HTTP routes and the worker both build on the wiring; neither uses the other.
    ("interfaces", ("service.api", "workers"), False),
    ("app", ("service.app",), True),
    ("entry points", ("service.cli", "service.cli_ops", "service.devstack"), True),
]

# And between packages: the worker builds on the service package, never the other way round
# (`tryon-gateway worker` runs the `workers` package by module path).
PACKAGES = ("service", "workers")


def place(module: str) -> tuple[int, str] | None:
    """(layer index, group prefix) of a module of service/ or workers/, None for others."""
    best: tuple[int, str] | None = None
    for rank, (_, prefixes, _sideways) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = prefix != "service" and module.startswith(prefix + ".")
            if (module == prefix or inside) and (best is None or len(prefix) > len(best[1])):
                best = (rank, prefix)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, module: str) -> set[str]:
    """Every project module `path` imports, anywhere in it (`from service import jobs` is
    service.jobs), except under `if TYPE_CHECKING:`: a type named for a parameter that the
    caller passes down is no dependency at run time."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*sub.split(".")) / "__init__.py"
                ).exists()
                found.add(sub if is_module else base)
    return {m for m in found if m.split(".")[0] in ("service", "workers")}


def sources() -> list[Path]:
    return sorted([*(ROOT / "service").rglob("*.py"), *(ROOT / "workers").rglob("*.py")])


def upward_imports() -> list[str]:
    wrong = []
    for path in sources():
        module = module_name(path)
        here = place(module)
        assert here is not None, f"{module} is in no layer: add it to LAYERS"
        for target in sorted(imported(path, module)):
            there = place(target)
            assert there is not None, f"{target} (imported by {module}) is in no layer"
            rank, group = there
            sideways = LAYERS[rank][2] or group == here[1]
            above = PACKAGES.index(target.split(".")[0]) > PACKAGES.index(module.split(".")[0])
            if above or rank > here[0] or (rank == here[0] and not sideways):
                wrong.append(
                    f"{module} ({LAYERS[here[0]][0]}) imports {target} ({LAYERS[rank][0]})"
                )
    return wrong


def test_imports_run_downward() -> None:
    assert upward_imports() == []


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("service.settings", "settings"),
        ("service.ops.pauses", "domain"),
        ("service.api.dashboard", "interfaces"),
        ("workers.main", "interfaces"),
        ("service.cli", "entry points"),
        ("service.admin_tokens", "leaves"),
        ("service", "leaves"),
    ],
)
def test_modules_are_placed_by_their_longest_prefix(module: str, layer: str) -> None:
    found = place(module)
    assert found is not None
    assert LAYERS[found[0]][0] == layer


def test_a_module_in_no_layer_is_not_placed() -> None:
    assert place("service.somewhere_new") is None
    assert place("workers.somewhere_new") == (
        LAYERS.index(next(x for x in LAYERS if x[0] == "interfaces")),
        "workers",
    )
