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
    KUEUE_API_VERSION,
    NAMESPACE,
    VALUES_FILES,
    RenderedChart,
    render,
    values_file,
)

# One xdist worker renders every values file (the fixtures in conftest.py are module-scoped).
pytestmark = pytest.mark.xdist_group("helm_chart")


def overlay(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, mapping by mapping (as Helm merges values files)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


# What every render needs: sign-in and a certificate for the default TLS Ingress.
SIGN_IN: dict[str, Any] = {
    "oidc": {"issuer": "https://idp.example.org", "audience": "trainyard"},
    "ingress": {"tls": {"secretName": "tls"}},
}


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
        if manifest["apiVersion"] == KUEUE_API_VERSION:
            continue  # a custom resource: test_helm_chart_kueue.py checks its structure
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_validation_refuses_a_misspelt_field(production: RenderedChart) -> None:
    # Shows the validation above is strict: an unknown field is an error, not ignored.
    deployment = production.deployment("backend")
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(misspelt, KUBE_VERSION, strict=True)


def test_backend_runs_at_least_two_replicas_behind_health_probes(rendered: RenderedChart) -> None:
    backend = rendered.deployment("backend")
    values = rendered.values["backend"]
    assert backend["spec"]["replicas"] == values["replicas"] >= 2
    container = rendered.container("backend")
    assert container["command"] == ["python", "-m", "trainyard.api"]
    assert container["ports"] == [
        {"name": "http", "containerPort": values["port"], "protocol": "TCP"},
        {"name": "internal", "containerPort": values["internalPort"], "protocol": "TCP"},
    ]
    assert values["port"] != values["internalPort"]
    # On the internal port: /readyz's detail is not for the Ingress's visitors. A loopback
    # Host, which the API's Host check always accepts, whatever the pod's address.
    host = [{"name": "Host", "value": "localhost"}]
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {
            "path": path,
            "port": "internal",
            "httpHeaders": host,
        }
    config = rendered.config("backend")
    assert config["TRAINYARD_API_PORT"] == str(values["port"])
    assert config["TRAINYARD_INTERNAL_PORT"] == str(values["internalPort"])


def test_worker_serves_only_its_metrics_has_no_probe_and_its_replica_count(
    rendered: RenderedChart,
) -> None:
    worker = rendered.deployment("worker")
    assert worker["spec"]["replicas"] == rendered.values["worker"]["replicas"]
    container = rendered.container("worker")
    assert container["command"] == ["trainyard-worker"]
    metrics = rendered.values["metrics"]["worker"]
    assert container["ports"] == [
        {"name": "metrics", "containerPort": metrics["port"], "protocol": "TCP"},
        {"name": "temporal-metrics", "containerPort": metrics["temporalPort"], "protocol": "TCP"},
    ]
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
    trainer_accounts = [
        sa for sa in rendered.of_kind("ServiceAccount") if sa["metadata"]["name"] == account
    ]
    if training["serviceAccount"]["create"]:
        # One in each namespace trainer Jobs may run in, none with a token mounted.
        namespaces = [sa["metadata"]["namespace"] for sa in trainer_accounts]
        assert namespaces == rendered.training_namespaces
        assert all(sa["automountServiceAccountToken"] is False for sa in trainer_accounts)
    else:
        assert trainer_accounts == []


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
    # Only the public port's Service: the internal API is never reachable from outside.
    assert [path["backend"] for path in rule["http"]["paths"]] == [
        {"service": {"name": f"{FULLNAME}-backend", "port": {"name": "http"}}}
    ]
    tls = ingress_values["tls"]
    annotations = ingress["metadata"].get("annotations", {})
    assert annotations.items() >= ingress_values["annotations"].items()
    if tls["enabled"]:
        secret_name = tls["secretName"] or f"{FULLNAME}-tls"
        assert spec["tls"] == [{"hosts": [ingress_values["host"]], "secretName": secret_name}]
        assert annotations.get("cert-manager.io/cluster-issuer", "") == tls["clusterIssuer"]
    else:
        assert "tls" not in spec


def test_tls_is_on_unless_turned_off(chart: helm.Chart) -> None:
    assert chart.merge_values({})["ingress"]["tls"]["enabled"] is True
    plain = render(chart, overlay(SIGN_IN, {"ingress": {"tls": {"enabled": False}}}))
    [ingress] = plain.of_kind("Ingress")
    assert "tls" not in ingress["spec"]
    assert plain.config("backend")["TRAINYARD_PUBLIC_URL"] == "http://trainyard.example.com"


def test_cert_manager_issues_the_certificate_into_a_secret_the_chart_names(
    chart: helm.Chart,
) -> None:
    rendered = render(chart, values_file("cert-manager"))
    [ingress] = rendered.of_kind("Ingress")
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "512m",
        "cert-manager.io/cluster-issuer": "letsencrypt-prod",
    }
    assert ingress["spec"]["tls"] == [
        {"hosts": ["trainyard.example.net"], "secretName": f"{FULLNAME}-tls"}
    ]


def test_the_internal_api_has_a_cluster_only_service_of_its_own(rendered: RenderedChart) -> None:
    service = rendered.get("Service", f"{FULLNAME}-backend-internal")["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {
            "name": "internal",
            "port": rendered.values["service"]["internalPort"],
            "targetPort": "internal",
            "protocol": "TCP",
        }
    ]
    public = rendered.get("Service", f"{FULLNAME}-backend")["spec"]
    assert [port["targetPort"] for port in public["ports"]] == ["http"]
    assert public["selector"] == service["selector"]


def test_ingress_is_absent_when_disabled(chart: helm.Chart) -> None:
    # Independent of which values files exist: the disabled case is always covered.
    rendered = render(chart, overlay(SIGN_IN, {"ingress": {"enabled": False}}))
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
        pytest.param({"callbackUrl": "http://x"}, "'callbackUrl' not allowed", id="old-callback"),
        pytest.param(
            {"training": {"projectNamespaces": {"vision": "Vision_NS"}}},
            "at '/training/projectNamespaces/vision'",
            id="bad-project-namespace",
        ),
        pytest.param(
            {"backend": {"networkPolicy": {"from": [{"namespaceSelector": {}}]}}},
            "'from' not allowed",
            id="open-network-policy",
        ),
    ],
)
def test_values_the_schema_refuses_fail_the_render_naming_the_problem(
    chart: helm.Chart, values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(problem)):
        render(chart, values)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        pytest.param(
            {"oidc": {"issuer": "", "audience": ""}},
            "oidc.issuer and oidc.audience are required",
            id="no-oidc",
        ),
        pytest.param(
            {"oidc": {"audience": ""}},
            "oidc.issuer and oidc.audience are required",
            id="no-audience",
        ),
        pytest.param(
            {"ingress": {"tls": {"secretName": ""}}},
            "ingress.tls needs secretName (an existing kubernetes.io/tls Secret) or clusterIssuer",
            id="tls-without-certificate",
        ),
        pytest.param(
            {"backend": {"internalPort": 8000}},
            "backend.port and backend.internalPort must differ",
            id="one-port",
        ),
        pytest.param(
            {"callbacks": {"viaIngress": True}, "ingress": {"enabled": False, "host": ""}},
            "callbacks.viaIngress needs the public URL",
            id="callbacks-via-no-ingress",
        ),
    ],
)
def test_insecure_or_incomplete_values_fail_the_render_naming_the_values(
    chart: helm.Chart, values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(problem)):
        render(chart, overlay(SIGN_IN, values))
