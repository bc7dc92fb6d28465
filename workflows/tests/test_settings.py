"""Worker settings: embedded-tier defaults and TRAINYARD_ environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainyard_workflows.contracts import DEFAULT_TASK_QUEUE
from trainyard_workflows.settings import EMBEDDED_INTERNAL_TOKEN, WorkerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TRAINYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_describe_the_embedded_tier(tmp_path: Path) -> None:
    settings = WorkerSettings()

    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.temporal_namespace == "default"
    assert settings.task_queue == DEFAULT_TASK_QUEUE
    assert settings.backend_url == "http://127.0.0.1:8000"
    assert settings.trainer_callback_url == "http://127.0.0.1:8000"
    assert settings.internal_token == EMBEDDED_INTERNAL_TOKEN
    assert settings.launcher == "subprocess"
    assert settings.data_dir == tmp_path.resolve() / ".trainyard"
    assert settings.trainers_dir == REPO_ROOT / "trainers"
    assert (settings.stop_grace_s, settings.watch_poll_s, settings.keepalive_s) == (10, 1, 15)


def test_every_field_reads_its_trainyard_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRAINYARD_BACKEND_URL", "http://backend:8000/")
    monkeypatch.setenv("TRAINYARD_CALLBACK_URL", "http://public.example:8000")
    monkeypatch.setenv("TRAINYARD_INTERNAL_TOKEN", "s3cret")
    monkeypatch.setenv("TRAINYARD_DATA_DIR", "state")
    monkeypatch.setenv("TRAINYARD_TRAINERS_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("TRAINYARD_TASK_QUEUE", "queue-7")
    monkeypatch.setenv("TRAINYARD_STOP_GRACE_S", "2.5")

    settings = WorkerSettings()

    assert settings.backend_url == "http://backend:8000"
    assert settings.trainer_callback_url == "http://public.example:8000"
    assert settings.internal_token == "s3cret"
    assert settings.data_dir == tmp_path.resolve() / "state"
    assert settings.trainers_dir == tmp_path / "elsewhere"
    assert settings.task_queue == "queue-7"
    assert settings.stop_grace_s == 2.5


def test_the_callback_url_follows_the_backend_url_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINYARD_BACKEND_URL", "http://10.0.0.5:9000")

    assert WorkerSettings().trainer_callback_url == "http://10.0.0.5:9000"


def test_attempt_dirs_live_under_the_data_dir_per_job_and_attempt(tmp_path: Path) -> None:
    settings = WorkerSettings(data_dir=tmp_path)

    assert settings.attempt_dir("job_0f3a", 2) == tmp_path / "jobs" / "job_0f3a" / "attempt-2"


@pytest.mark.parametrize("job_id", ["../etc", "job_../../x", "job_a/b", "0f3a", "job_"])
def test_attempt_dir_refuses_ids_that_are_not_job_ids(tmp_path: Path, job_id: str) -> None:
    settings = WorkerSettings(data_dir=tmp_path)

    with pytest.raises(ValueError, match="is not of the form job_<hex>"):
        settings.attempt_dir(job_id, 1)


def test_trainyard_variables_of_other_processes_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The backend and the worker share one environment under `trainyard up`.
    monkeypatch.setenv("TRAINYARD_DATABASE_URL", "sqlite://")

    assert WorkerSettings().launcher == "subprocess"


def test_an_unknown_launcher_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_LAUNCHER", "slurm")

    with pytest.raises(ValueError, match="launcher"):
        WorkerSettings()


def test_kubernetes_settings_default_to_a_plain_job_in_the_default_namespace() -> None:
    settings = WorkerSettings()

    assert settings.k8s_namespace == "default"
    assert settings.k8s_project_namespaces == {}
    assert settings.k8s_images == {}
    assert settings.k8s_node_selector == {}
    assert settings.k8s_tolerations == []
    assert settings.k8s_priority_class is None
    assert settings.k8s_service_account is None
    assert settings.k8s_ttl_seconds_after_finished == 3600
    assert settings.k8s_default_time_limit_s == 7 * 24 * 3600
    assert settings.k8s_kubeconfig is None


def test_kubernetes_settings_read_json_from_their_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The Helm chart renders exactly these names into the worker's ConfigMap.
    monkeypatch.setenv("TRAINYARD_LAUNCHER", "kubernetes")
    monkeypatch.setenv("TRAINYARD_K8S_NAMESPACE", "training")
    monkeypatch.setenv(
        "TRAINYARD_K8S_PROJECT_NAMESPACES", '{"vision": "ml-vision", "nlp": "ml-nlp"}'
    )
    monkeypatch.setenv(
        "TRAINYARD_K8S_IMAGES",
        '{"ultralytics": "registry.example/trainer-ultralytics:1.2", "timm": "r/timm:3"}',
    )
    monkeypatch.setenv("TRAINYARD_K8S_NODE_SELECTOR", '{"pool": "gpu", "zone": "a"}')
    monkeypatch.setenv(
        "TRAINYARD_K8S_TOLERATIONS",
        '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},'
        ' {"key": "spot", "operator": "Equal", "value": "true", "tolerationSeconds": 30}]',
    )
    monkeypatch.setenv("TRAINYARD_K8S_PRIORITY_CLASS", "training-low")
    monkeypatch.setenv("TRAINYARD_K8S_SERVICE_ACCOUNT", "trainer")
    monkeypatch.setenv("TRAINYARD_K8S_TTL_SECONDS_AFTER_FINISHED", "600")
    monkeypatch.setenv("TRAINYARD_K8S_DEFAULT_TIME_LIMIT_S", "86400")
    monkeypatch.setenv("TRAINYARD_K8S_KUBECONFIG", str(tmp_path / "kubeconfig"))

    settings = WorkerSettings()

    assert settings.launcher == "kubernetes"
    assert settings.k8s_namespace == "training"
    assert settings.k8s_project_namespaces == {"vision": "ml-vision", "nlp": "ml-nlp"}
    assert settings.k8s_images == {
        "ultralytics": "registry.example/trainer-ultralytics:1.2",
        "timm": "r/timm:3",
    }
    assert settings.k8s_node_selector == {"pool": "gpu", "zone": "a"}
    assert settings.k8s_tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Equal", "value": "true", "tolerationSeconds": 30},
    ]
    assert settings.k8s_priority_class == "training-low"
    assert settings.k8s_service_account == "trainer"
    assert settings.k8s_ttl_seconds_after_finished == 600
    assert settings.k8s_default_time_limit_s == 86400
    assert settings.k8s_kubeconfig == tmp_path / "kubeconfig"


@pytest.mark.parametrize("images", [None, "{}"])
def test_the_kubernetes_launcher_is_refused_without_trainer_images(
    monkeypatch: pytest.MonkeyPatch, images: str | None
) -> None:
    monkeypatch.setenv("TRAINYARD_LAUNCHER", "kubernetes")
    if images is not None:
        monkeypatch.setenv("TRAINYARD_K8S_IMAGES", images)

    with pytest.raises(ValueError, match="TRAINYARD_K8S_IMAGES"):
        WorkerSettings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRAINYARD_K8S_IMAGES", "ultralytics=reg/trainer:1"),
        ("TRAINYARD_K8S_NODE_SELECTOR", '["pool", "gpu"]'),
        ("TRAINYARD_K8S_TOLERATIONS", '{"key": "spot"}'),
        ("TRAINYARD_K8S_TTL_SECONDS_AFTER_FINISHED", "-1"),
        ("TRAINYARD_K8S_PROJECT_NAMESPACES", '["ml-vision"]'),
        # Not a namespace name: Kubernetes would refuse every Job of the project.
        ("TRAINYARD_K8S_PROJECT_NAMESPACES", '{"vision": "ML_Vision"}'),
        ("TRAINYARD_K8S_PROJECT_NAMESPACES", '{"vision": ""}'),
    ],
)
def test_malformed_kubernetes_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("TRAINYARD_K8S_IMAGES", '{"ultralytics": "reg/trainer:1"}')
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=name.removeprefix("TRAINYARD_").lower()):
        WorkerSettings()


def test_empty_optional_kubernetes_settings_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PRIORITY_CLASS", "SERVICE_ACCOUNT", "KUBECONFIG"):
        monkeypatch.setenv(f"TRAINYARD_K8S_{name}", "")

    settings = WorkerSettings()

    assert settings.k8s_priority_class is None
    assert settings.k8s_service_account is None
    assert settings.k8s_kubeconfig is None
