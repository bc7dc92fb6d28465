"""charts/trainyard: rendered by Helm's engine with each values file in values/, linted, every
manifest validated against the Kubernetes schemas; the workloads, their images and placement, the
ingress and the values schema. test_helm_chart_access.py covers secrets, settings and access."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from .rendered_chart import (
    CHART_DIR,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    VALUES_FILES,
    RenderedChart,
    render,
    values_file,
)

# One xdist worker renders every values file (the fixtures in conftest.py are module-scoped).
pytestmark = pytest.mark.xdist_group("helm_chart")


@pytest.mark.parametrize("name", VALUES_FILES)
def test_chart_lints_without_warnings(name: str) -> None:
    report = helm.lint(
        CHART_DIR, values_file(name), strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION
    )
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; 1 (info: "icon is recommended") is acceptable.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_is_valid_kubernetes(rendered: RenderedChart) -> None:
    for manifest in rendered.manifests:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_validation_refuses_a_misspelt_field(production: RenderedChart) -> None:
    # Shows the validation above is strict: an unknown field is an error, not ignored.
    deployment = production.deployment("backend")
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(misspelt, KUBE_VERSION, strict=True)


def test_backend_runs_at_least_two_replicas_behind_health_probes(rendered: RenderedChart) -> None:
    backend = rendered.deployment("backend")
    assert backend["spec"]["replicas"] == rendered.values["backend"]["replicas"] >= 2
    container = rendered.container("backend")
    assert container["command"] == ["python", "-m", "trainyard.api"]
    assert container["ports"] == [
        {"name": "http", "containerPort": rendered.values["backend"]["port"], "protocol": "TCP"}
    ]
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    port = str(rendered.values["backend"]["port"])
    assert rendered.config("backend")["TRAINYARD_API_PORT"] == port


def test_worker_has_no_probe_and_its_replica_count(rendered: RenderedChart) -> None:
    worker = rendered.deployment("worker")
    assert worker["spec"]["replicas"] == rendered.values["worker"]["replicas"]
    container = rendered.container("worker")
    assert container["command"] == ["trainyard-worker"]
    assert "ports" not in container
    assert not {"startupProbe", "livenessProbe", "readinessProbe"} & container.keys()


def test_worker_config_carries_the_trainer_job_settings(rendered: RenderedChart) -> None:
    training = rendered.values["training"]
    config = rendered.config("worker")
    assert config["TRAINYARD_K8S_NAMESPACE"] == rendered.training_namespace
    images = json.loads(config["TRAINYARD_K8S_IMAGES"])
    assert images.keys() == {"ultralytics", "timm", "huggingface"}
    for framework, image in training["images"].items():
        assert images[framework] == f"{image['repository']}:{image['tag'] or rendered.app_version}"
    assert json.loads(config["TRAINYARD_K8S_NODE_SELECTOR"]) == training["nodeSelector"]
    assert json.loads(config["TRAINYARD_K8S_TOLERATIONS"]) == training["tolerations"]
    assert config.get("TRAINYARD_K8S_PRIORITY_CLASS", "") == training["priorityClassName"]
    ttl = int(config["TRAINYARD_K8S_TTL_SECONDS_AFTER_FINISHED"])
    assert ttl == training["ttlSecondsAfterFinished"]
    account = config["TRAINYARD_K8S_SERVICE_ACCOUNT"]
    trainer_account = rendered.find("ServiceAccount", account)
    if training["serviceAccount"]["create"]:
        assert trainer_account is not None
        assert trainer_account["metadata"]["namespace"] == rendered.training_namespace
        assert trainer_account["automountServiceAccountToken"] is False
    else:
        assert trainer_account is None


def test_production_values_place_trainers_on_gpu_nodes(production: RenderedChart) -> None:
    config = production.config("worker")
    assert config["TRAINYARD_K8S_NAMESPACE"] == "trainyard-training"
    assert json.loads(config["TRAINYARD_K8S_IMAGES"]) == {
        "ultralytics": "registry.example.org/trainyard/trainer-ultralytics:0.1.0-cuda13",
        "timm": "registry.example.org/trainyard/trainer-timm:0.1.0",
        "huggingface": "registry.example.org/trainyard/trainer-huggingface:0.1.0-rc2",
    }
    assert json.loads(config["TRAINYARD_K8S_NODE_SELECTOR"]) == {"nvidia.com/gpu.present": "true"}
    assert json.loads(config["TRAINYARD_K8S_TOLERATIONS"]) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert config["TRAINYARD_K8S_PRIORITY_CLASS"] == "training-batch"
    assert config["TRAINYARD_K8S_SERVICE_ACCOUNT"] == "gpu-trainer"
    assert config["TRAINYARD_K8S_TTL_SECONDS_AFTER_FINISHED"] == "600"


def test_platform_images_are_pinned_to_the_app_version_or_the_given_tag(
    rendered: RenderedChart,
) -> None:
    image = rendered.values["image"]
    expected = f"{image['repository']}:{image['tag'] or rendered.app_version}"
    for component in ("backend", "worker"):
        assert rendered.container(component)["image"] == expected
        assert not expected.endswith(":latest")


def test_production_images_come_from_its_registry(production: RenderedChart) -> None:
    assert production.container("worker")["image"] == (
        "registry.example.org/trainyard/platform:0.1.0-rc2"
    )
    assert production.pod_spec("backend")["imagePullSecrets"] == [{"name": "registry-example-org"}]


def test_pods_run_unprivileged_on_a_read_only_root(rendered: RenderedChart) -> None:
    for component in ("backend", "worker"):
        pod = rendered.pod_spec(component)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        container = rendered.container(component)
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert "memory" in resources["limits"]


def test_ingress_follows_its_values(rendered: RenderedChart) -> None:
    ingress_values = rendered.values["ingress"]
    ingresses = rendered.of_kind("Ingress")
    if not ingress_values["enabled"]:
        assert ingresses == []
        return
    [ingress] = ingresses
    spec = ingress["spec"]
    assert spec["ingressClassName"] == ingress_values["className"]
    [rule] = spec["rules"]
    assert rule["host"] == ingress_values["host"]
    assert rule["http"]["paths"][0]["backend"] == {
        "service": {"name": f"{FULLNAME}-backend", "port": {"name": "http"}}
    }
    if ingress_values["tls"]["enabled"]:
        assert spec["tls"] == [
            {"hosts": [ingress_values["host"]], "secretName": ingress_values["tls"]["secretName"]}
        ]
    else:
        assert "tls" not in spec


def test_ingress_is_absent_when_disabled(chart: helm.Chart) -> None:
    # Independent of which values files exist: the disabled case is always covered.
    rendered = render(chart, {"ingress": {"enabled": False}})
    assert rendered.of_kind("Ingress") == []


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        pytest.param({"backend": {"replicas": 1}}, "at '/backend/replicas': minimum", id="one-api"),
        pytest.param({"bogus": True}, "additional properties 'bogus' not allowed", id="unknown"),
        pytest.param(
            {"secrets": {"databaseUrl": {"name": "db", "key": "url", "value": "postgresql://x"}}},
            "at '/secrets/databaseUrl': additional properties 'value' not allowed",
            id="literal-secret",
        ),
        pytest.param({"image": {"tag": "latest"}}, "at '/image/tag'", id="latest-tag"),
        pytest.param({"storage": {"url": "file:///data"}}, "at '/storage/url'", id="file-storage"),
        pytest.param(
            {"ingress": {"tls": {"enabled": True, "secretName": ""}}},
            "at '/ingress/tls/secretName'",
            id="tls-without-secret",
        ),
    ],
)
def test_values_the_schema_refuses_fail_the_render_naming_the_problem(
    chart: helm.Chart, values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(problem)):
        render(chart, values)
