"""The deployment files agree with the code: every service is run with a command the CLI has,
health-checked and restarted; the manifests list files that exist; the topic documentation
matches `shared/topics.py`. (No Docker engine runs here, so the files are checked, not run.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from typer.main import get_command

import shared.metrics  # noqa: F401  (registers the metrics the dashboard reads)
from journeyman.cli import app
from journeyman.stack import DEFAULT_PORTS, SERVICES
from shared.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_runs_each_service_with_a_real_command() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    services = compose["services"]
    assert {"kafka", "postgres", "mailpit", "migrate", "topics", *SERVICES} <= set(services)
    for name in SERVICES:
        spec = services[name]
        assert spec["command"][:2] == ["serve", name]
        assert spec["command"][-1] == str(DEFAULT_PORTS[name])
        assert spec["healthcheck"]["test"], name
        assert spec["restart"] == "unless-stopped"
        assert "container_name" not in spec  # --scale must work
        assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for step in ("migrate", "topics"):
        assert services[step]["command"][0] in commands
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_kustomization_lists_existing_files_and_deployments_have_probes() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource
    for name in SERVICES:
        kinds = {d["kind"]: d for d in _docs(K8S / f"{name}.yaml")}
        assert {"Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)
        container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]


def test_topic_documentation_matches_the_code() -> None:
    documented = {
        t["name"]: t
        for t in yaml.safe_load((ROOT / "deploy/kafka/topics.yaml").read_text())["topics"]
    }
    assert set(documented) == {t.name for t in TOPICS}
    for spec in TOPICS:
        assert documented[spec.name]["partitions"] == spec.partitions
        assert documented[spec.name]["cleanup_policy"] == spec.config.get(
            "cleanup.policy", "delete"
        )


def test_grafana_dashboard_uses_metrics_the_services_export() -> None:
    exported = {m.name for m in REGISTRY.collect()}
    dashboard = json.loads((ROOT / "deploy/grafana/journeyman.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bjm_[a-z_]+", target["expr"]))
    base = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert base <= exported, base - exported
