"""charts/trainyard: what reaches the pods and what they may reach. Secrets only by reference,
settings the processes really read, the worker's Role in the training namespace, network
policies and the disruption budget. Fixtures: conftest.py."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from trainyard.core.settings import BackendSettings
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.storage import StorageSettings

from .rendered_chart import FULLNAME, NAMESPACE, RELEASE, RenderedChart, selects

pytestmark = pytest.mark.xdist_group("helm_chart")

# Secret settings -> the key under `secrets:` naming the Secret that holds them.
SECRET_REFS = {
    "TRAINYARD_DATABASE_URL": "databaseUrl",
    "TRAINYARD_INTERNAL_TOKEN": "internalToken",
    "TRAINYARD_CALLBACK_SECRET": "callbackSecret",
    "TRAINYARD_SESSION_SECRET": "sessionSecret",
    "TRAINYARD_OIDC_CLIENT_SECRET": "oidcClientSecret",
}
S3_SECRET_KEYS = {
    "TRAINYARD_S3_ACCESS_KEY_ID": "accessKeyIdKey",
    "TRAINYARD_S3_SECRET_ACCESS_KEY": "secretAccessKeyKey",
}
SECRET_ENV_OF = {
    "backend": {
        "TRAINYARD_DATABASE_URL",
        "TRAINYARD_INTERNAL_TOKEN",
        "TRAINYARD_CALLBACK_SECRET",
        "TRAINYARD_SESSION_SECRET",
    },
    "worker": {"TRAINYARD_INTERNAL_TOKEN"},
}
# What the pods' Secrets would hold, to start the settings classes the way a pod does.
SECRET_STAND_INS = {"TRAINYARD_DATABASE_URL": "postgresql+asyncpg://trainyard@db:5432/trainyard"}
SETTINGS_OF: dict[str, tuple[type[Any], ...]] = {
    "backend": (BackendSettings, StorageSettings),
    "worker": (WorkerSettings, StorageSettings),
}

# What the worker's Kubernetes launcher may do in the training namespace: exactly this (and
# exactly the calls its code makes: test_helm_chart_trust.py).
LAUNCHER_RULES = {
    (("batch",), ("jobs",), ("create", "delete", "get", "list")),
    (("",), ("pods",), ("list",)),
    (("",), ("pods/log",), ("get",)),
    (("",), ("secrets",), ("create", "delete", "list", "patch")),
    (("",), ("events",), ("list",)),
}
# And with kueue.enabled, what it reads of Kueue there (test_helm_chart_kueue.py).
KUEUE_RULES = {
    (("kueue.x-k8s.io",), ("workloads",), ("list",)),
    (("visibility.kueue.x-k8s.io",), ("localqueues/pendingworkloads",), ("get",)),
}


def test_secrets_reach_pods_only_through_secret_key_refs(rendered: RenderedChart) -> None:
    secrets = rendered.values["secrets"]
    assert rendered.of_kind("Secret") == []
    for config_map in rendered.of_kind("ConfigMap"):
        data: dict[str, str] = config_map["data"]
        assert not (SECRET_REFS.keys() | S3_SECRET_KEYS.keys()) & data.keys()
        # No URL with credentials in it (a database DSN, say) slipped into plain config.
        assert [v for v in data.values() if re.search(r"://[^/@\s]+:[^/@\s]+@", v)] == []
    s3_env = S3_SECRET_KEYS.keys() if secrets["s3"]["name"] else set()
    client_secret = (
        {"TRAINYARD_OIDC_CLIENT_SECRET"} if secrets["oidcClientSecret"]["name"] else set()
    )
    for component, expected in SECRET_ENV_OF.items():
        env = {entry["name"]: entry for entry in rendered.container(component)["env"]}
        optional = client_secret if component == "backend" else set()
        assert env.keys() == expected | s3_env | optional
        for name, entry in env.items():
            assert "value" not in entry
            if name in S3_SECRET_KEYS:
                ref = {"name": secrets["s3"]["name"], "key": secrets["s3"][S3_SECRET_KEYS[name]]}
            else:
                ref = secrets[SECRET_REFS[name]]
            assert entry["valueFrom"] == {"secretKeyRef": ref}


def test_config_maps_hold_only_settings_the_processes_read(rendered: RenderedChart) -> None:
    # A misspelt variable would be silently ignored by pydantic-settings: catch it here.
    for component, classes in SETTINGS_OF.items():
        fields = {f"TRAINYARD_{name.upper()}" for cls in classes for name in cls.model_fields}
        unread = rendered.config(component).keys() - fields
        assert unread == set(), component
        assert {entry["name"] for entry in rendered.container(component)["env"]} <= fields
        env_from = rendered.container(component)["envFrom"]
        assert env_from == [{"configMapRef": {"name": f"{FULLNAME}-{component}"}}]


def test_each_process_accepts_the_settings_its_pod_gets(
    rendered: RenderedChart, monkeypatch: pytest.MonkeyPatch
) -> None:
    for component, classes in SETTINGS_OF.items():
        with monkeypatch.context() as patch:
            for key in [key for key in os.environ if key.startswith("TRAINYARD_")]:
                patch.delenv(key)
            for key, value in rendered.config(component).items():
                patch.setenv(key, value)
            for entry in rendered.container(component)["env"]:
                patch.setenv(entry["name"], SECRET_STAND_INS.get(entry["name"], "stand-in"))
            parsed = [cls() for cls in classes]
        if component == "worker":
            worker = parsed[0]
            assert isinstance(worker, WorkerSettings)
            assert worker.launcher == "kubernetes"
            assert worker.k8s_namespace == rendered.training_namespace
            assert worker.k8s_images.keys() == rendered.values["training"]["images"].keys()
        else:
            backend = parsed[0]
            assert isinstance(backend, BackendSettings)
            values = rendered.values
            assert backend.auth_mode == "oidc"
            assert backend.oidc_issuer == values["oidc"]["issuer"]
            assert backend.oidc_audience == values["oidc"]["audience"]
            assert backend.oidc_client_id == (values["oidc"]["clientId"] or None)
            assert backend.oidc_groups_claim == (values["oidc"]["groupsClaim"] or None)
            assert backend.oidc_group_roles == values["oidc"]["groupRoles"]
            assert backend.platform_admins == values["oidc"]["platformAdmins"]
            assert backend.internal_port == values["backend"]["internalPort"]
            assert backend.callbacks_on_public_port is values["callbacks"]["viaIngress"]
            # The worker and trainers call the internal Service by name: its Host is trusted.
            assert f"{FULLNAME}-backend-internal.{NAMESPACE}.svc" in backend.trusted_hosts
            if values["ingress"]["enabled"]:
                assert values["ingress"]["host"] in backend.trusted_hosts


def test_worker_config_points_at_the_backend_and_the_external_services(
    rendered: RenderedChart,
) -> None:
    values = rendered.values
    worker = rendered.config("worker")
    internal_url = (
        f"http://{FULLNAME}-backend-internal.{NAMESPACE}.svc:{values['service']['internalPort']}"
    )
    assert worker["TRAINYARD_BACKEND_URL"] == internal_url
    if values["callbacks"]["url"]:
        callback_url = values["callbacks"]["url"]
    elif values["callbacks"]["viaIngress"]:
        callback_url = rendered.config("backend")["TRAINYARD_PUBLIC_URL"]
    else:
        callback_url = internal_url
    assert worker["TRAINYARD_CALLBACK_URL"] == callback_url
    assert worker["TRAINYARD_LAUNCHER"] == "kubernetes"
    for config in (worker, rendered.config("backend")):
        assert config["TRAINYARD_TEMPORAL_ADDRESS"] == values["temporal"]["address"]
        assert config["TRAINYARD_TASK_QUEUE"] == values["temporal"]["taskQueue"]
        assert config["TRAINYARD_STORAGE_URL"] == values["storage"]["url"]
        assert config.get("TRAINYARD_S3_ENDPOINT_URL", "") == values["storage"]["s3"]["endpointUrl"]
        assert config.get("TRAINYARD_MLFLOW_TRACKING_URI", "") == values["mlflow"]["trackingUri"]
    assert rendered.config("backend")["TRAINYARD_REDIS_URL"] == values["redis"]["url"]


def test_worker_may_run_trainer_jobs_in_the_training_namespace_and_nothing_more(
    rendered: RenderedChart,
) -> None:
    roles = rendered.of_kind("Role")
    bindings = rendered.of_kind("RoleBinding")
    # One Role and its binding in each training namespace; none where the platform runs
    # (unless trainers are put there on purpose).
    assert [role["metadata"]["namespace"] for role in roles] == rendered.training_namespaces
    assert [b["metadata"]["namespace"] for b in bindings] == rendered.training_namespaces
    for role, binding in zip(roles, bindings, strict=True):
        assert role["metadata"]["name"] == f"{FULLNAME}-trainer-launcher"
        rules = {
            (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
            for r in role["rules"]
        }
        expected = LAUNCHER_RULES | (KUEUE_RULES if rendered.values["kueue"]["enabled"] else set())
        assert rules == expected
        assert len(role["rules"]) == len(expected)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{FULLNAME}-worker", "namespace": NAMESPACE}
        ]
    assert rendered.pod_spec("worker")["serviceAccountName"] == f"{FULLNAME}-worker"


def test_the_worker_may_list_nodes_for_capacity_and_nothing_else_cluster_wide(
    rendered: RenderedChart,
) -> None:
    (role,) = rendered.of_kind("ClusterRole")
    (binding,) = rendered.of_kind("ClusterRoleBinding")

    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{FULLNAME}-worker", "namespace": NAMESPACE}
    ]


def test_training_namespaces_are_apart_from_the_release_and_created_when_asked(
    rendered: RenderedChart,
) -> None:
    training = rendered.values["training"]
    if not training["namespace"]:
        assert rendered.training_namespace == f"{RELEASE}-training"
    created = [ns["metadata"]["name"] for ns in rendered.of_kind("Namespace")]
    if training["createNamespaces"]:
        assert created == [ns for ns in rendered.training_namespaces if ns != NAMESPACE]
        for namespace in rendered.of_kind("Namespace"):
            labels = namespace["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    else:
        assert created == []
    projects = training["projectNamespaces"]
    worker = rendered.config("worker")
    if projects:
        assert json.loads(worker["TRAINYARD_K8S_PROJECT_NAMESPACES"]) == projects
    else:
        assert "TRAINYARD_K8S_PROJECT_NAMESPACES" not in worker


def test_project_namespaces_get_the_worker_rights_and_a_trainer_account(
    project_namespaces: RenderedChart,
) -> None:
    assert project_namespaces.training_namespaces == ["ml-training", "ml-nlp", "ml-vision"]
    assert [ns["metadata"]["name"] for ns in project_namespaces.of_kind("Namespace")] == [
        "ml-training",
        "ml-nlp",
        "ml-vision",
    ]
    assert len(project_namespaces.of_kind("Role")) == 3
    trainer_accounts = [
        sa["metadata"]["namespace"]
        for sa in project_namespaces.of_kind("ServiceAccount")
        if sa["metadata"]["name"] == f"{FULLNAME}-trainer"
    ]
    assert trainer_accounts == ["ml-training", "ml-nlp", "ml-vision"]


def test_callbacks_via_the_ingress_go_to_the_public_url_and_its_port_takes_them(
    callbacks_via_ingress: RenderedChart,
) -> None:
    worker = callbacks_via_ingress.config("worker")
    backend = callbacks_via_ingress.config("backend")
    assert worker["TRAINYARD_CALLBACK_URL"] == "https://trainyard.example.org"
    assert backend["TRAINYARD_CALLBACKS_ON_PUBLIC_PORT"] == "true"
    # The worker itself still uses the internal Service.
    assert worker["TRAINYARD_BACKEND_URL"].startswith(f"http://{FULLNAME}-backend-internal.")


def test_by_default_trainers_call_back_on_the_internal_service_only(
    rendered: RenderedChart,
) -> None:
    if rendered.values["callbacks"]["viaIngress"]:
        return
    assert rendered.config("backend")["TRAINYARD_CALLBACKS_ON_PUBLIC_PORT"] == "false"


def test_backend_has_its_own_service_account_without_api_access(rendered: RenderedChart) -> None:
    account = rendered.get("ServiceAccount", f"{FULLNAME}-backend")
    assert account["automountServiceAccountToken"] is False
    pod = rendered.pod_spec("backend")
    assert pod["serviceAccountName"] == f"{FULLNAME}-backend"
    assert pod["automountServiceAccountToken"] is False


def test_only_the_worker_pod_mounts_the_workers_token(rendered: RenderedChart) -> None:
    # The worker launches trainer Jobs (the chart's only launcher): its pod mounts the token,
    # its ServiceAccount mounts it nowhere by default.
    account = rendered.get("ServiceAccount", f"{FULLNAME}-worker")
    assert account["automountServiceAccountToken"] is False
    assert rendered.config("worker")["TRAINYARD_LAUNCHER"] == "kubernetes"
    assert rendered.pod_spec("worker")["automountServiceAccountToken"] is True


def test_network_policies_and_disruption_budget_select_the_right_pods(
    rendered: RenderedChart,
) -> None:
    backend_labels = rendered.deployment("backend")["spec"]["template"]["metadata"]["labels"]
    worker_labels = rendered.deployment("worker")["spec"]["template"]["metadata"]["labels"]

    policy = rendered.get("NetworkPolicy", f"{FULLNAME}-backend")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], backend_labels)
    assert not selects(policy["podSelector"]["matchLabels"], worker_labels)
    assert policy["policyTypes"] == ["Ingress"]
    controller = rendered.values["backend"]["networkPolicy"]["ingressController"]
    public, internal, scrape = policy["ingress"]
    # The public port: the ingress controller's namespace (and pods) only.
    [peer] = public["from"]
    assert peer["namespaceSelector"] == {"matchLabels": controller["namespaceLabels"]}
    if controller["podLabels"]:
        assert peer["podSelector"] == {"matchLabels": controller["podLabels"]}
    else:
        assert "podSelector" not in peer
    assert public["ports"] == [{"port": "http", "protocol": "TCP"}]
    # The internal port: the worker's pods, and trainer pods in each training namespace.
    worker_peer, *trainer_peers = internal["from"]
    assert worker_peer.keys() == {"podSelector"}
    assert selects(worker_peer["podSelector"]["matchLabels"], worker_labels)
    assert not selects(worker_peer["podSelector"]["matchLabels"], backend_labels)
    assert [peer["namespaceSelector"] for peer in trainer_peers] == [
        {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        for namespace in rendered.training_namespaces
    ]
    trainer_pod = {
        "app.kubernetes.io/managed-by": "trainyard",
        "app.kubernetes.io/component": "trainer",
    }
    assert all(peer["podSelector"] == {"matchLabels": trainer_pod} for peer in trainer_peers)
    assert internal["ports"] == [{"port": "internal", "protocol": "TCP"}]
    # Prometheus, for /metrics on the internal port (test_helm_chart_metrics.py).
    assert scrape["ports"] == [{"port": "internal", "protocol": "TCP"}]

    worker_policy = rendered.find("NetworkPolicy", f"{FULLNAME}-worker")
    if rendered.values["worker"]["networkPolicy"]["enabled"]:
        assert worker_policy is not None
        assert selects(worker_policy["spec"]["podSelector"]["matchLabels"], worker_labels)
        assert worker_policy["spec"]["policyTypes"] == ["Ingress"]
        # Prometheus only, on the metrics ports only (test_helm_chart_metrics.py).
        [scrape] = worker_policy["spec"]["ingress"]
        assert scrape["ports"] == [
            {"port": "metrics", "protocol": "TCP"},
            {"port": "temporal-metrics", "protocol": "TCP"},
        ]
    else:
        assert worker_policy is None

    budget = rendered.get("PodDisruptionBudget", f"{FULLNAME}-backend")["spec"]
    assert budget["minAvailable"] == 1
    assert selects(budget["selector"]["matchLabels"], backend_labels)
    assert not selects(budget["selector"]["matchLabels"], worker_labels)

    service = rendered.get("Service", f"{FULLNAME}-backend")["spec"]
    assert selects(service["selector"], backend_labels)
    assert service["ports"][0]["targetPort"] == "http"
    internal_service = rendered.get("Service", f"{FULLNAME}-backend-internal")["spec"]
    assert selects(internal_service["selector"], backend_labels)
