"""charts/trainyard: the trust boundaries on Kubernetes (issue 20). The worker's Role is exactly
what its code calls, and never touches the release namespace's Secrets; every pod of a release
(the trainers' too, built from the worker's rendered settings) runs unprivileged and only the
worker's mounts a ServiceAccount token; trainers may reach only DNS, the callback port and
storage; Temporal and MLflow admit only the platform pods that call them. Fixtures: conftest.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from trainyard.core.settings import BackendSettings
from trainyard_workflows.launchers import LaunchRequest, kubernetes_kueue
from trainyard_workflows.launchers.kubernetes_manifests import (
    HOME_DIR,
    attempt_labels,
    job_manifest,
)
from trainyard_workflows.settings import WorkerSettings

from .rendered_chart import (
    FULLNAME,
    KIND_DIR,
    KUBE_VERSION,
    NAMESPACE,
    REPO_ROOT,
    Manifest,
    RenderedChart,
    render,
    selects,
    values_file,
)
from .test_helm_chart_access import SECRET_STAND_INS

pytestmark = pytest.mark.xdist_group("helm_chart")

WORKFLOWS_DIR = REPO_ROOT / "workflows" / "trainyard_workflows"
# The launcher's modules that call the API with the clients it hands them (`core`, `batch`):
# kubernetes_launcher.py itself, and the reconciler's listing (kubernetes_status.py).
LAUNCHER_SOURCES = sorted((WORKFLOWS_DIR / "launchers").glob("kubernetes_*.py"))
# What it reads of Kueue (kueue.enabled): Workloads, and the visibility API's pending list.
KUEUE_SOURCE = WORKFLOWS_DIR / "launchers" / "kubernetes_kueue.py"
# The only cluster-wide calls: what admission reads of the nodes.
CAPACITY_SOURCE = WORKFLOWS_DIR / "capacity" / "kubernetes.py"
# `core.read_namespaced_pod_log(...)`, `batch.delete_namespaced_job(...)`: the client's method
# names say the verb and the resource of each call.
_API_CALL = re.compile(
    r"\b(core|batch)\.(create|read|list|patch|replace|delete)_namespaced_(\w+)\("
)
_VERBS = {"create": "create", "read": "get", "list": "list", "patch": "patch"} | {
    "replace": "update",
    "delete": "delete",
}
_RESOURCES = {
    "job": ("batch", "jobs"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "secret": ("", "secrets"),
    "event": ("", "events"),
}
# `CoreV1Api(api_client).list_node()`: a cluster-scoped call.
_CLUSTER_CALL = re.compile(r"\.(create|read|list|patch|replace|delete)_(node)\(")
_CLUSTER_RESOURCES = {"node": ("", "nodes")}
# `CustomObjectsApi(api).list_namespaced_custom_object(KUEUE_GROUP, VERSION, namespace,
# "workloads")`: the group is a constant of the module.
_CUSTOM_CALL = re.compile(
    r"\.(create|get|list|patch|replace|delete)_namespaced_custom_object\(\s*(\w+),\s*\w+,\s*\w+,"
    r'\s*"(\w+)"'
)
# `BatchV1Api(api).list_namespaced_job(...)`: a typed call outside Kueue's APIs.
_TYPED_CALL = re.compile(
    r"\b(?:CoreV1|BatchV1)Api\(\w+\)\.(create|read|list|patch|replace|delete)_namespaced_(\w+)\("
)
# `api.call_api(_PENDING_PATH, "GET", ...)`: a path constant of the module, and the method.
_RAW_CALL = re.compile(r'\.call_api\(\s*(\w+),\s*"(\w+)"')
# "/apis/<group>/<version>/namespaces/{namespace}/<resource>/{name}[/<subresource>]"
_RAW_PATH = re.compile(r"^/apis/([^/]+)/[^/]+/namespaces/\{namespace\}/(\w+)/\{\w+\}(?:/(\w+))?/?$")
_METHODS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def launcher_calls() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every Kubernetes API call the worker's code makes."""
    calls: set[tuple[str, str, str]] = set()
    for verb, resource in (
        (match.group(2), match.group(3))
        for source in LAUNCHER_SOURCES
        for match in _API_CALL.finditer(source.read_text())
    ):
        group, plural = _RESOURCES[resource]
        calls.add((group, plural, _VERBS[verb]))
    return calls


def kueue_calls() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every Kubernetes API call kubernetes_kueue.py makes."""
    # Its group and path constants, private ones included: what the calls really name.
    module = vars(kubernetes_kueue)
    source = KUEUE_SOURCE.read_text()
    calls = {
        (module[group], plural, _VERBS[verb])
        for verb, group, plural in _CUSTOM_CALL.findall(source)
    }
    calls |= {
        (*_RESOURCES[resource], _VERBS[verb]) for verb, resource in _TYPED_CALL.findall(source)
    }
    for constant, method in _RAW_CALL.findall(source):
        path = _RAW_PATH.match(module[constant].format(namespace="{namespace}", queue="{queue}"))
        assert path is not None, f"{constant}: not a namespaced resource path"
        group, resource, subresource = path.groups()
        plural = f"{resource}/{subresource}" if subresource else resource
        calls.add((group, plural, _METHODS[method]))
    return calls


def cluster_calls() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every cluster-scoped call the worker's code makes."""
    return {
        (*_CLUSTER_RESOURCES[match.group(2)], _VERBS[match.group(1)])
        for match in _CLUSTER_CALL.finditer(CAPACITY_SOURCE.read_text())
    }


def role_grants(role: Manifest) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_only_the_kubernetes_launcher_calls_the_kubernetes_api() -> None:
    # So that launcher_calls() and cluster_calls() see every call: no other module builds an
    # API object.
    builders = [
        path.relative_to(WORKFLOWS_DIR)
        for path in WORKFLOWS_DIR.rglob("*.py")
        if re.search(r"\b\w+V\d\w*Api\(", path.read_text())
    ]
    assert sorted(str(path) for path in builders) == [
        "capacity/kubernetes.py",
        "launchers/kubernetes_kueue.py",
        "launchers/kubernetes_launcher.py",
    ]
    assert ("batch", "jobs", "create") in launcher_calls()
    # Kueue's Workloads and pending list, and the namespace's Jobs (to name a preemptor).
    assert kueue_calls() == {
        ("kueue.x-k8s.io", "workloads", "list"),
        ("visibility.kueue.x-k8s.io", "localqueues/pendingworkloads", "get"),
        ("batch", "jobs", "list"),
    }
    assert cluster_calls() == {("", "nodes", "list")}


def test_the_workers_role_grants_exactly_the_calls_its_code_makes(rendered: RenderedChart) -> None:
    calls = launcher_calls() | (kueue_calls() if rendered.values["kueue"]["enabled"] else set())
    roles = rendered.of_kind("Role")
    assert roles, "no Role rendered"
    for role in roles:
        assert role_grants(role) == calls, role["metadata"]["namespace"]
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "watch" not in rule["verbs"]
            assert "resourceNames" not in rule
    (cluster_role,) = rendered.of_kind("ClusterRole")
    assert role_grants(cluster_role) == cluster_calls()


def test_secrets_are_reachable_only_in_the_training_namespaces(rendered: RenderedChart) -> None:
    # Never a Secret verb where the platform's own credentials are (the release namespace),
    # and never one to read a Secret by name: listing (for the reconciler) is scoped by the
    # namespace, which holds only the trainers' Secrets.
    assert NAMESPACE not in rendered.training_namespaces
    for role in rendered.of_kind("Role"):
        namespace = role["metadata"]["namespace"]
        secret_verbs = {verb for _, resource, verb in role_grants(role) if resource == "secrets"}
        assert namespace in rendered.training_namespaces
        assert secret_verbs == {"create", "patch", "list", "delete"}
        assert namespace != NAMESPACE
    for binding in rendered.of_kind("RoleBinding"):
        assert binding["metadata"]["namespace"] != NAMESPACE


@pytest.mark.parametrize(
    "training",
    [
        pytest.param({"namespace": NAMESPACE}, id="training-namespace"),
        pytest.param(
            {"namespace": "ml-training", "projectNamespaces": {"vision": NAMESPACE}},
            id="project-namespace",
        ),
    ],
)
def test_a_training_namespace_that_is_the_release_namespace_is_refused(
    chart: helm.Chart, training: dict[str, Any]
) -> None:
    values = values_file("minimal") | {"training": training}
    with pytest.raises(helm.HelmRenderError, match="must not name the release namespace"):
        render(chart, values)


@pytest.fixture
def worker_settings(rendered: RenderedChart, monkeypatch: pytest.MonkeyPatch) -> WorkerSettings:
    """The worker's settings as its pod reads them (the rendered ConfigMap)."""
    for key in [key for key in os.environ if key.startswith("TRAINYARD_")]:
        monkeypatch.delenv(key)
    for key, value in rendered.config("worker").items():
        monkeypatch.setenv(key, value)
    return WorkerSettings()


def trainer_job(settings: WorkerSettings) -> Manifest:
    """The Job the worker launches for an attempt, with these settings."""
    output_dir = "/tmp/trainyard/jobs/job_1/attempt-1"
    request = LaunchRequest(
        job_id="job_1",
        attempt=1,
        framework="ultralytics",
        output_dir=output_dir,
        env={"TRAINYARD_OUTPUT_DIR": output_dir},
        gpus=1,
    )
    return job_manifest(request, settings)


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] not in WORKLOADS:
            continue
        spec = manifest["spec"]
        if manifest["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod = spec if manifest["kind"] == "Pod" else spec["template"]["spec"]
        yield f"{manifest['kind']}/{manifest['metadata']['name']}", pod


def test_every_pod_of_a_release_runs_unprivileged_and_only_the_worker_holds_a_token(
    rendered: RenderedChart, worker_settings: WorkerSettings
) -> None:
    values = rendered.values["training"]
    job = trainer_job(worker_settings)
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
    pods = [*pod_specs(rendered.manifests), ("trainer Job", job["spec"]["template"]["spec"])]
    assert [name for name, _ in pods] == [
        f"Deployment/{FULLNAME}-backend",
        f"Deployment/{FULLNAME}-worker",
        "trainer Job",
    ]
    for name, pod in pods:
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] > 0, name
        assert context["runAsGroup"] > 0, name
        assert context["fsGroup"] == context["runAsGroup"], name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        is_worker = name == f"Deployment/{FULLNAME}-worker"
        assert pod["automountServiceAccountToken"] is is_worker, name
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security.get("privileged", False) is False, name
            # A read-only root: the writable places are emptyDirs, never a host path.
            mounted = {mount["name"] for mount in container.get("volumeMounts", [])}
            volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
            assert all(volumes[v].keys() == {"name", "emptyDir"} for v in mounted), name
        assert "hostNetwork" not in pod
        assert "hostPID" not in pod
        assert "hostIPC" not in pod
    trainer = job["spec"]["template"]["spec"]["securityContext"]
    assert (trainer["runAsUser"], trainer["runAsGroup"]) == (
        values["runAsUser"],
        values["runAsGroup"],
    )


def test_trainer_uid_zero_is_refused_by_the_schema(chart: helm.Chart) -> None:
    values = values_file("minimal") | {"training": {"runAsUser": 0}}
    with pytest.raises(helm.HelmValuesError, match="/training/runAsUser"):
        render(chart, values)


def _peer_selects(peer: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    if not selects(peer["namespaceSelector"]["matchLabels"], namespace_labels):
        return False
    return selects(peer.get("podSelector", {}).get("matchLabels", {}), labels)


def test_trainer_pods_admit_nothing_and_reach_only_dns_callbacks_and_storage(
    rendered: RenderedChart,
) -> None:
    values = rendered.values
    policy_values = values["training"]["networkPolicy"]
    policies = [
        p
        for p in rendered.of_kind("NetworkPolicy")
        if p["metadata"]["name"] == f"{FULLNAME}-trainer"
    ]
    if not policy_values["enabled"]:
        assert policies == []
        return
    assert [p["metadata"]["namespace"] for p in policies] == rendered.training_namespaces
    backend_pod = rendered.deployment("backend")["spec"]["template"]["metadata"]["labels"]
    [internal_port] = [
        port["containerPort"]
        for port in rendered.container("backend")["ports"]
        if port["name"] == "internal"
    ]
    for policy in policies:
        spec = policy["spec"]
        # The labels the launcher gives every trainer pod.
        assert selects(spec["podSelector"]["matchLabels"], attempt_labels("job_1", 1))
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["ingress"] == []
        dns, callbacks, *storage = spec["egress"]
        # DNS: the cluster's DNS pods, port 53 only.
        [dns_peer] = dns["to"]
        assert dns_peer["namespaceSelector"] == {
            "matchLabels": policy_values["dns"]["namespaceLabels"]
        }
        assert dns_peer["podSelector"]["matchLabels"] == policy_values["dns"]["podLabels"]
        assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
        # Callbacks: the backend's internal port, or the ingress controller with viaIngress.
        [peer] = callbacks["to"]
        if values["callbacks"]["viaIngress"]:
            controller = values["backend"]["networkPolicy"]["ingressController"]
            assert peer["namespaceSelector"] == {"matchLabels": controller["namespaceLabels"]}
            ports = [{"port": port, "protocol": "TCP"} for port in policy_values["ingressPorts"]]
            assert callbacks["ports"] == ports
        else:
            assert _peer_selects(peer, NAMESPACE, backend_pod)
            assert callbacks["ports"] == [{"port": internal_port, "protocol": "TCP"}]
            assert internal_port == values["backend"]["internalPort"]
            assert internal_port != values["backend"]["port"]
        # Storage: what the values say, each rule with its peers and ports (none admits all).
        assert storage == policy_values["storageEgress"]
        for rule in spec["egress"]:
            assert rule["to"]
            assert rule["ports"]
            for peer in rule["to"]:
                assert peer != {}
                assert peer.get("ipBlock", {}).get("except") != []
        kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)


def test_the_default_storage_egress_keeps_trainers_off_private_and_metadata_addresses(
    chart: helm.Chart,
) -> None:
    rendered = render(chart, values_file("minimal"))
    [rule] = rendered.values["training"]["networkPolicy"]["storageEgress"]
    [peer] = rule["to"]
    assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    # The cloud metadata service (the node's credentials), the cluster's and the nodes' ranges.
    assert {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        peer["ipBlock"]["except"]
    )
    assert rule["ports"] == [{"port": 443, "protocol": "TCP"}]


def test_kind_trainers_reach_storage_at_minio_only(chart: helm.Chart) -> None:
    rendered = render(chart, values_file("kind"))
    [policy] = [
        p for p in rendered.of_kind("NetworkPolicy") if p["metadata"]["name"].endswith("-trainer")
    ]
    *_, storage = policy["spec"]["egress"]
    [peer] = storage["to"]
    assert _peer_selects(peer, NAMESPACE, {"app": "minio"})
    assert storage["ports"] == [{"port": 9000, "protocol": "TCP"}]
    # Trainers run in another namespace: the endpoint must name MinIO's.
    assert rendered.config("worker")["TRAINYARD_S3_ENDPOINT_URL"] == (
        f"http://minio.{NAMESPACE}.svc:9000"
    )


SERVER_CLIENTS = {"temporal": ("backend", "worker"), "mlflow": ("worker",)}


@pytest.mark.parametrize("server", sorted(SERVER_CLIENTS))
def test_temporal_and_mlflow_admit_only_the_platform_pods_that_call_them(
    rendered: RenderedChart, server: str
) -> None:
    policy_values = rendered.values[server]["networkPolicy"]
    policy = rendered.find("NetworkPolicy", f"{FULLNAME}-{server}")
    if not policy_values["enabled"]:
        assert policy is None
        return
    assert policy is not None
    assert policy["metadata"]["namespace"] == (policy_values["namespace"] or NAMESPACE)
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": policy_values["podLabels"]}
    assert spec["policyTypes"] == ["Ingress"]
    clients, *others = spec["ingress"]
    assert clients["ports"] == [{"port": policy_values["port"], "protocol": "TCP"}]
    pod_labels = {
        component: rendered.deployment(component)["spec"]["template"]["metadata"]["labels"]
        for component in ("backend", "worker")
    }
    admitted = {
        component
        for component, labels in pod_labels.items()
        if any(_peer_selects(peer, NAMESPACE, labels) for peer in clients["from"])
    }
    assert admitted == set(SERVER_CLIENTS[server])
    trainer = attempt_labels("job_1", 1)
    for peer in clients["from"]:
        for namespace in rendered.training_namespaces:
            assert not _peer_selects(peer, namespace, trainer)
    assert others == ([{"from": policy_values["allowFrom"]}] if policy_values["allowFrom"] else [])
    kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("name", ["kind", "production"])
def test_the_kind_and_production_values_fence_off_temporal(name: str, chart: helm.Chart) -> None:
    rendered = render(chart, values_file(name))
    assert rendered.find("NetworkPolicy", f"{FULLNAME}-temporal") is not None
    if rendered.values["mlflow"]["trackingUri"]:
        assert rendered.find("NetworkPolicy", f"{FULLNAME}-mlflow") is not None


def test_no_ingress_routes_to_temporal_or_mlflow_and_no_link_to_an_in_cluster_mlflow(
    rendered: RenderedChart, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == f"{FULLNAME}-backend"
    # The web UI links to MLflow runs at mlflow.uiUrl only: never at the in-cluster trackingUri.
    for key in [key for key in os.environ if key.startswith("TRAINYARD_")]:
        monkeypatch.delenv(key)
    for key, value in rendered.config("backend").items():
        monkeypatch.setenv(key, value)
    for entry in rendered.container("backend")["env"]:
        monkeypatch.setenv(entry["name"], SECRET_STAND_INS.get(entry["name"], "stand-in"))
    ui_url = rendered.values["mlflow"]["uiUrl"]
    assert BackendSettings().mlflow_link_base == (ui_url.rstrip("/") or None)


def test_the_kind_dependencies_hold_no_token_and_no_platform_secret() -> None:
    manifests = [d for d in yaml.safe_load_all((KIND_DIR / "dependencies.yaml").read_text()) if d]
    pods = list(pod_specs(manifests))
    assert "Deployment/temporal" in [name for name, _ in pods]
    for name, pod in pods:
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            text = yaml.safe_dump(container)
            assert "secretKeyRef" not in text, name
            assert "secretRef" not in text, name
        assert all("secret" not in volume for volume in pod.get("volumes", [])), name


def test_trainer_images_run_as_the_user_the_launcher_and_the_chart_give_trainer_pods() -> None:
    # The pod's runAsUser/runAsGroup and its writable HOME must be the image's own user's, or
    # the trainer could not read its home nor write anywhere the read-only root allows.
    fields = WorkerSettings.model_fields
    uid, gid = fields["k8s_run_as_user"].default, fields["k8s_run_as_group"].default
    chart_values = yaml.safe_load((REPO_ROOT / "charts" / "trainyard" / "values.yaml").read_text())
    assert (chart_values["training"]["runAsUser"], chart_values["training"]["runAsGroup"]) == (
        uid,
        gid,
    )
    dockerfiles = sorted((REPO_ROOT / "trainers").glob("*/Dockerfile"))
    assert dockerfiles
    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        assert re.findall(r"^USER (\S+)$", text, re.MULTILINE)[-1] == f"{uid}:{gid}", dockerfile
        assert f"--uid {uid} --gid {gid} " in text, dockerfile
        assert re.findall(r"^WORKDIR (\S+)$", text, re.MULTILINE)[-1] == HOME_DIR, dockerfile
