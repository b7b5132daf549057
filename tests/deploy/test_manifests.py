"""deploy/ is valid without a cluster or a container engine: the compose file against the
Compose specification, every Kubernetes object against the Kubernetes schemas (KEDA's
ScaledObject against deploy/schemas/), the alert rules' structure, every PromQL expression
parsed, the dashboard's structure, and the settings the manifests name exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from service.settings import Settings

from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    alert_rules,
    all_exprs,
    base_files,
    by_kind,
    dashboard,
    kustomize_build,
    metric_names,
    read_resources,
    render_base,
)

K8S_VERSION = "1.32.0"
KEDA_SCHEMA = json.loads((DEPLOY / "schemas" / "keda-scaledobject.schema.json").read_text())
# SIGTERM to SIGKILL must cover arq's wait for running jobs plus the cancel and clean-up.
SHUTDOWN_MARGIN = 10


def setting_names() -> set[str]:
    settings = Settings()
    prefixes = {"redis": "REDIS_", "genlook": "GENLOOK_", "gateway": "GATEWAY_",
                "worker": "WORKER_", "webhooks": "WEBHOOK_", "ops": "OPS_",
                "results": "RESULTS_"}  # fmt: skip
    return {
        prefixes[group] + name.upper()
        for group in Settings.__struct_fields__
        for name in type(getattr(settings, group)).__struct_fields__
    }


def test_compose_matches_the_compose_spec() -> None:
    subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(DEPLOY / "compose.yaml")],
        check=True,
    )  # fmt: skip


def test_compose_roles_and_shutdown() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["gateway"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["emulator"]["profiles"] == ["emulator"]
    assert "--appendonly yes" in services["redis"]["command"]
    # `--scale worker=3` needs no fixed name and no published port on the worker.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    grace = int(services["worker"]["stop_grace_period"].removesuffix("s"))
    assert grace >= Settings().worker.job_completion_wait + SHUTDOWN_MARGIN


def test_env_example_names_only_real_settings() -> None:
    names = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    )
    assert names, "no variable found"
    assert names <= setting_names(), names - setting_names()
    for required in ("REDIS_URL", "GENLOOK_API_KEY", "GATEWAY_SECRET_KEYS", "OPS_ADMIN_TOKENS",
                     "WORKER_JOB_COMPLETION_WAIT", "GENLOOK_RATE_LIMIT"):  # fmt: skip
        assert required in names


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render_base()


def test_every_kubernetes_object_is_valid(base: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in base)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget",
                     "PodDisruptionBudget", "ScaledObject", "Secret", "Service"]  # fmt: skip
    hpa = yaml.safe_load((K8S / "components" / "gateway-hpa" / "hpa.yaml").read_text())
    for doc in [*base, hpa]:
        if doc["kind"] == "ScaledObject":
            jsonschema.validate(doc, KEDA_SCHEMA)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_keda_schema_refuses_a_typo(base: list[dict[str, Any]]) -> None:
    scaled = by_kind(base, "ScaledObject", "tryon-worker")
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)


def test_kustomization_lists_every_manifest() -> None:
    listed = {p.name for p in base_files()}
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl (kustomize) not installed")
def test_reading_the_files_finds_what_kustomize_renders() -> None:
    def objects(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((d["kind"], d["metadata"]["name"]) for d in docs)

    assert objects(read_resources()) == objects(kustomize_build())


def test_settings_in_configmap_and_secret_exist(base: list[dict[str, Any]]) -> None:
    config = by_kind(base, "ConfigMap", "tryon-gateway-config")["data"]
    secret = by_kind(base, "Secret", "tryon-gateway-secrets")["stringData"]
    assert set(config) | set(secret) <= setting_names()
    assert all("EXAMPLE" in value for value in secret.values() if value), "example values only"
    # What would be a secret is never in the ConfigMap.
    assert not {k for k in config if re.search("KEY|TOKEN|PASSWORD|URL", k)}
    # Parsed as the processes will: the example settings start a process.
    Settings.from_env({**config, **secret})


def test_worker_shutdown_and_probes(base: list[dict[str, Any]]) -> None:
    config = by_kind(base, "ConfigMap", "tryon-gateway-config")["data"]
    worker = by_kind(base, "Deployment", "tryon-worker")["spec"]["template"]["spec"]
    wait = int(config["WORKER_JOB_COMPLETION_WAIT"])
    assert worker["terminationGracePeriodSeconds"] >= wait + SHUTDOWN_MARGIN
    container = worker["containers"][0]
    assert container["args"] == ["worker"]
    probe = ["python", "/app/probes/worker_alive.py"]
    assert container["livenessProbe"]["exec"]["command"] == probe
    assert container["startupProbe"]["exec"]["command"] == probe


def test_gateway_probes(base: list[dict[str, Any]]) -> None:
    spec = by_kind(base, "Deployment", "tryon-gateway")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_alert_rules_structure() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    # What issue 7 asks the rules to cover, by the metric each one watches.
    watched = {name for r in rules for name in metric_names(r["expr"])}
    assert watched >= {
        "tryon_gateway_queue_oldest_ready_age_seconds",
        "tryon_gateway_tryon_finished_total",
        "tryon_gateway_workers_live",
        "tryon_gateway_upstream_rate_limited_total",
        "tryon_gateway_credits_balance",
        "tryon_gateway_webhook_deliveries_total",
    }


def test_every_expression_parses_and_uses_gateway_metrics() -> None:
    exprs = all_exprs()
    assert len(exprs) > 20
    for expr in exprs:
        names = metric_names(expr)  # raises on a syntax error
        assert names, expr
        assert all(n.startswith("tryon_gateway_") for n in names), expr


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the parser raises a bare ValueError)
        metric_names("max(rate(tryon_gateway_tryon_accepted_total[5m])")


def test_dashboard_structure() -> None:
    dash = dashboard()
    assert dash["uid"] == "tryon-gateway"
    assert dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["type"] in ("stat", "timeseries")
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert panel["targets"], panel["title"]
        assert [t["refId"] for t in panel["targets"]] == [
            chr(65 + i) for i in range(len(panel["targets"]))
        ]
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"])
    assert "datasource" in variables
