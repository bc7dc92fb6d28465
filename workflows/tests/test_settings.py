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
    monkeypatch.setenv("TRAINYARD_LAUNCHER", "kubernetes")

    with pytest.raises(ValueError, match="launcher"):
        WorkerSettings()
