"""charts/trainyard: what reaches the pods and what they may reach. Secrets only by reference,
settings the processes really read, the worker's Role in the training namespace, network
policies and the disruption budget. Fixtures: conftest.py."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from trainyard.core.settings import BackendSettings
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.storage import StorageSettings

from .rendered_chart import FULLNAME, NAMESPACE, RenderedChart, selects

pytestmark = pytest.mark.xdist_group("helm_chart")

# Secret settings -> the key under `secrets:` naming the Secret that holds them.
SECRET_REFS = {
    "TRAINYARD_DATABASE_URL": "databaseUrl",
    "TRAINYARD_INTERNAL_TOKEN": "internalToken",
    "TRAINYARD_CALLBACK_SECRET": "callbackSecret",
}
S3_SECRET_KEYS = {
    "TRAINYARD_S3_ACCESS_KEY_ID": "accessKeyIdKey",
    "TRAINYARD_S3_SECRET_ACCESS_KEY": "secretAccessKeyKey",
}
SECRET_ENV_OF = {
    "backend": {"TRAINYARD_DATABASE_URL", "TRAINYARD_INTERNAL_TOKEN", "TRAINYARD_CALLBACK_SECRET"},
    "worker": {"TRAINYARD_INTERNAL_TOKEN"},
}
# What the pods' Secrets would hold, to start the settings classes the way a pod does.
SECRET_STAND_INS = {"TRAINYARD_DATABASE_URL": "postgresql+asyncpg://trainyard@db:5432/trainyard"}
SETTINGS_OF: dict[str, tuple[type[Any], ...]] = {
    "backend": (BackendSettings, StorageSettings),
    "worker": (WorkerSettings, StorageSettings),
}

# What the worker's Kubernetes launcher may do in the training namespace: exactly this.
LAUNCHER_RULES = {
    (("batch",), ("jobs",), ("create", "delete", "get", "list", "watch")),
    (("",), ("pods",), ("delete", "get", "list", "watch")),
    (("",), ("pods/log",), ("get",)),
    (("",), ("secrets",), ("create", "delete", "get", "list", "patch")),
    (("",), ("events",), ("get", "list", "watch")),
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
    for component, expected in SECRET_ENV_OF.items():
        env = {entry["name"]: entry for entry in rendered.container(component)["env"]}
        assert env.keys() == expected | s3_env
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
        assert rendered.config(component).keys() - fields == set(), component
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


def test_worker_config_points_at_the_backend_and_the_external_services(
    rendered: RenderedChart,
) -> None:
    values = rendered.values
    worker = rendered.config("worker")
    backend_url = f"http://{FULLNAME}-backend.{NAMESPACE}.svc:{values['service']['port']}"
    assert worker["TRAINYARD_BACKEND_URL"] == backend_url
    assert worker["TRAINYARD_CALLBACK_URL"] == (values["callbackUrl"] or backend_url)
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
    namespace = rendered.training_namespace
    role = rendered.get("Role", f"{FULLNAME}-trainer-launcher")
    assert role["metadata"]["namespace"] == namespace
    rules = {
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
        for r in role["rules"]
    }
    assert rules == LAUNCHER_RULES
    assert len(role["rules"]) == len(LAUNCHER_RULES)
    binding = rendered.get("RoleBinding", f"{FULLNAME}-trainer-launcher")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{FULLNAME}-worker", "namespace": NAMESPACE}
    ]
    assert rendered.pod_spec("worker")["serviceAccountName"] == f"{FULLNAME}-worker"
    assert len(rendered.of_kind("Role")) == len(rendered.of_kind("RoleBinding")) == 1
    assert rendered.of_kind("ClusterRole") == rendered.of_kind("ClusterRoleBinding") == []


def test_backend_has_its_own_service_account_without_api_access(rendered: RenderedChart) -> None:
    account = rendered.get("ServiceAccount", f"{FULLNAME}-backend")
    assert account["automountServiceAccountToken"] is False
    pod = rendered.pod_spec("backend")
    assert pod["serviceAccountName"] == f"{FULLNAME}-backend"
    assert pod["automountServiceAccountToken"] is False


def test_network_policies_and_disruption_budget_select_the_right_pods(
    rendered: RenderedChart,
) -> None:
    backend_labels = rendered.deployment("backend")["spec"]["template"]["metadata"]["labels"]
    worker_labels = rendered.deployment("worker")["spec"]["template"]["metadata"]["labels"]

    policy = rendered.get("NetworkPolicy", f"{FULLNAME}-backend")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], backend_labels)
    assert not selects(policy["podSelector"]["matchLabels"], worker_labels)
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "from": rendered.values["backend"]["networkPolicy"]["from"],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }
    ]

    worker_policy = rendered.find("NetworkPolicy", f"{FULLNAME}-worker")
    if rendered.values["worker"]["networkPolicy"]["enabled"]:
        assert worker_policy is not None
        assert selects(worker_policy["spec"]["podSelector"]["matchLabels"], worker_labels)
        assert worker_policy["spec"]["policyTypes"] == ["Ingress"]
        assert worker_policy["spec"]["ingress"] == []
    else:
        assert worker_policy is None

    budget = rendered.get("PodDisruptionBudget", f"{FULLNAME}-backend")["spec"]
    assert budget["minAvailable"] == 1
    assert selects(budget["selector"]["matchLabels"], backend_labels)
    assert not selects(budget["selector"]["matchLabels"], worker_labels)

    service = rendered.get("Service", f"{FULLNAME}-backend")["spec"]
    assert selects(service["selector"], backend_labels)
    assert service["ports"][0]["targetPort"] == "http"
