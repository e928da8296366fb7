"""deploy/kubernetes: every manifest validated against Kubernetes' OpenAPI schema
(``kubernetes-validate --strict``: unknown fields are errors); the ConfigMap's config is a
valid gateway config; the probes name the gateway's /health and /ready."""

from __future__ import annotations

import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_settings
from gateway.config.settings import Settings
from tests.deploy.support import DEPLOY

MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
VERSION = kubernetes_validate.latest_version()


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path):
    for document in documents(path):
        kubernetes_validate.validate(document, VERSION, strict=True)


def test_validation_catches_a_misspelt_field():
    deployment = next(
        d for d in documents(DEPLOY / "kubernetes/ome-zarr-gateway.yaml") if d["kind"] == "Deployment"
    )
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def resources() -> dict[str, dict]:
    return {d["kind"]: d for d in documents(DEPLOY / "kubernetes/ome-zarr-gateway.yaml")}


def test_deployment_service_and_configmap():
    assert {"ConfigMap", "Deployment", "Service"} <= set(resources())


def test_configmap_holds_a_valid_config():
    config = tomllib.loads(resources()["ConfigMap"]["data"]["config.toml"])
    settings = Settings.from_mapping(config)
    assert settings.server.host == "0.0.0.0" and settings.server.port == 8000


def test_container_probes_limits_and_read_only_data():
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    data = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert data["readOnly"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    config = tomllib.loads(resources()["ConfigMap"]["data"]["config.toml"])
    assert data["mountPath"] in config["roots"].values()
    env = {e["name"]: "pod-name" for e in container["env"]}
    load_settings(environ=env)  # every variable names a real setting, with a valid value


def test_service_targets_the_container_port():
    service = resources()["Service"]
    container = resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert service["spec"]["selector"] == resources()["Deployment"]["spec"]["selector"]["matchLabels"]
