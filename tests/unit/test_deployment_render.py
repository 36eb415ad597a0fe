"""The deployment files are rendered and checked by the real tools, offline (no Docker engine or
cluster runs here): `docker-compose config` (Debian's docker-compose) validates the compose
file against the Compose schema; `kubectl kustomize` renders the manifests, and every rendered
object is checked against the Kubernetes API models of the official Python client (generated
from the Kubernetes OpenAPI document): unknown fields, wrong types and missing required fields
all fail. The tools are required, not optional: `make test` installs docker-compose."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from pydantic_settings import BaseSettings

from journeyman.stack import SERVICES

ROOT = Path(__file__).resolve().parents[2]


class SchemaError(ValueError):
    """A manifest field the Kubernetes API would refuse."""


_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


def _check(value: Any, type_name: str, where: str) -> Any:
    """`value` as the client model type `type_name`, or SchemaError naming the field."""
    if value is None or type_name == "object":
        return value
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list")
        return [_check(v, type_name[5:-1], f"{where}[{i}]") for i, v in enumerate(value)]
    if type_name.startswith("dict["):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected a mapping")
        inner = type_name[5:-1].split(", ", 1)[1]
        return {k: _check(v, inner, f"{where}.{k}") for k, v in value.items()}
    if type_name in _SCALARS:
        ok = isinstance(value, _SCALARS[type_name])
        if not ok or (type_name != "bool" and isinstance(value, bool)):
            raise SchemaError(f"{where}: expected {type_name}, got {value!r}")
        return value
    if type_name in {"datetime", "date"}:
        return value
    return _model(value, getattr(kubernetes.client, type_name), where)


def _model(data: Any, klass: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object ({klass.__name__})")
    by_json = {json_name: attr for attr, json_name in klass.attribute_map.items()}
    unknown = set(data) - set(by_json)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {sorted(unknown)} for {klass.__name__}")
    kwargs = {
        by_json[k]: _check(v, klass.openapi_types[by_json[k]], f"{where}.{k}")
        for k, v in data.items()
    }
    try:
        return klass(**kwargs)  # the client's own checks: required fields, enumerations
    except ValueError as exc:
        raise SchemaError(f"{where}: {exc}") from exc


def validate_object(doc: dict[str, Any]) -> Any:
    """Check one Kubernetes object against the API model of its apiVersion and kind."""
    version = str(doc.get("apiVersion", "")).rsplit("/", 1)[-1]
    name = f"{version.capitalize()}{doc.get('kind', '')}"
    klass = getattr(kubernetes.client, name, None)
    if klass is None:
        raise SchemaError(f"no Kubernetes API model for {doc.get('apiVersion')} {doc.get('kind')}")
    return _model(doc, klass, f"{doc['kind']}/{doc.get('metadata', {}).get('name')}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed to check the deployment files (make test installs it)"
    return path


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        [_tool("kubectl"), "kustomize", str(ROOT / "deploy" / "kubernetes")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_the_validator_refuses_what_the_api_would() -> None:
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}
    validate_object(good)
    with pytest.raises(SchemaError, match="unknown field"):
        validate_object({**good, "metadata": {"name": "x", "lables": {}}})
    with pytest.raises(SchemaError, match="expected str"):
        validate_object({**good, "data": {"a": 1}})
    container = {"image": "journeyman"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [container]}}  # fmt: skip
    with pytest.raises(SchemaError, match="name"):
        validate_object(pod)


def test_every_rendered_object_matches_the_kubernetes_api(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        validate_object(doc)
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {
        "journeyman"
    }


def test_each_service_has_probes_resources_and_an_autoscaler(
    rendered: list[dict[str, Any]],
) -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in rendered:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for service in SERVICES:
        name = f"journeyman-{service}"
        deployment = by_kind["Deployment"][name]
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith("registry.example.com/journeyman:")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["path"] in {"/healthz", "/readyz"}, probe
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        hpa = by_kind["HorizontalPodAutoscaler"][name]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": name}  # fmt: skip
        assert 1 < hpa["minReplicas"] <= hpa["maxReplicas"] <= 6  # 6 partitions per topic
        assert name in by_kind["Service"]
        assert name in by_kind["PodDisruptionBudget"]
    (job,) = by_kind["Job"].values()
    pod = job["spec"]["template"]["spec"]
    steps = [c["args"][0] for c in (*pod.get("initContainers", []), *pod["containers"])]
    assert steps == ["migrate", "topics"]


def _settings_fields() -> set[str]:
    """Every environment variable a service reads: `JOURNEYMAN_<field>` of each settings class,
    plus the plain DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS."""
    names = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
    modules = ["shared.settings"]
    for service in SERVICES:
        if (ROOT / "services" / service / "settings.py").exists():
            modules.append(f"services.{service}.settings")
    for module_name in modules:
        for value in vars(importlib.import_module(module_name)).values():
            if isinstance(value, type) and issubclass(value, BaseSettings):
                prefix = str(value.model_config.get("env_prefix", ""))
                names |= {f"{prefix}{f}".upper() for f in value.model_fields}
    return names


def test_configuration_names_only_settings_the_services_read(
    rendered: list[dict[str, Any]],
) -> None:
    known = _settings_fields()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    named = set(compose["x-journeyman-env"])
    for doc in rendered:
        if doc["kind"] in {"ConfigMap", "Secret"}:
            named |= set(doc.get("data") or {}) | set(doc.get("stringData") or {})
    assert named, "no configuration found"
    assert named <= known, f"names no service reads: {sorted(named - known)}"


def test_compose_file_is_valid_for_docker_compose() -> None:
    tool = _tool("docker-compose")
    compose = ROOT / "docker-compose.yml"
    check = subprocess.run(
        [tool, "-f", str(compose), "config", "-q"], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    services = subprocess.run(
        [tool, "-f", str(compose), "config", "--services"], capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert {"kafka", "postgres", "mailpit", "migrate", "topics", *SERVICES} <= set(services)
