"""Reading the deploy/ artifacts for the tests: the rendered Kubernetes base, the PromQL
expressions of the alert rules and the dashboard, and the metric names an expression uses."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "tryon-gateway.json"


def render_base() -> list[dict[str, Any]]:
    """The base as kustomize renders it, or, without kubectl (a bare CI machine), as read."""
    return kustomize_build() if shutil.which("kubectl") else read_resources()


def kustomize_build() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def read_resources() -> list[dict[str, Any]]:
    """The resources kustomization.yaml lists, as they are (no label or image transform)."""
    return [doc for path in base_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def all_exprs() -> list[str]:
    """Every PromQL expression deploy/ ships: alerts, dashboard, the KEDA trigger."""
    scaled = yaml.safe_load((K8S / "worker-scaledobject.yaml").read_text())
    keda = [t["metadata"]["query"] for t in scaled["spec"]["triggers"]]
    return [r["expr"] for r in alert_rules()] + dashboard_exprs() + keda


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (parsing it: a syntax error raises)."""
    return set(_names(promql_parser.parse(expr)))


def _names(node: Any) -> Iterator[str]:
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None:
            yield from _names(child)
    for arg in getattr(node, "args", None) or ():
        yield from _names(arg)
