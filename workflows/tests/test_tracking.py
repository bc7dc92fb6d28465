"""MlflowTracker against a real MLflow server process (SQLite store, proxied artifacts)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.tracking import (
    MlflowTracker,
    build_tracker,
    heartbeat_metrics,
    metric_key,
    model_name_for,
    run_params,
)
from trainyard_workflows.tracking.metrics import final_metrics, run_tags, system_metrics
from trainyard_workflows.tracking.mlflow_tracker import SYNCED_SEQ_TAG, SyncCursor

# A fresh SQLite store runs all of MLflow's migrations first: ~10 s idle, more on a busy machine.
_START_TIMEOUT_S = 180


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` from this environment, as the embedded tier starts it."""
    mlflow = Path(sys.executable).parent / "mlflow"
    if not mlflow.exists():
        pytest.fail(f"the `mlflow` CLI is missing ({mlflow}): run `uv sync` (package mlflow)")
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {process.returncode}: "
                    + (root / "server.log").read_text()[-3000:]
                )
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health in {_START_TIMEOUT_S}s")
            time.sleep(0.2)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def tracker(mlflow_uri: str) -> MlflowTracker:
    return MlflowTracker(mlflow_uri)


@pytest.fixture
def client(mlflow_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


def _job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def _heartbeat(seq: int, epoch: int, **metrics: float | None) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "heartbeat",
        "created_at": datetime(2026, 1, 1, 0, 0, seq, tzinfo=UTC).isoformat(),
        "data": {"epoch": epoch, "epochs": 3, "metrics": metrics},
    }


JOB = {
    "framework": "ultralytics",
    "model": "yolo11n.yaml",
    "dataset": "shapes",
    "dataset_uri": "file:///data/shapes",
    "task": "detect",
    "epochs": 3,
    "imgsz": 64,
    "batch": 4,
    "gpus": 0,
    "hyperparameters": {"lr0": 0.01, "mosaic": 0.0},
}


def test_ultralytics_metric_names_become_keys_mlflow_accepts() -> None:
    assert metric_key("metrics/mAP50(B)") == "metrics/mAP50_B"
    assert metric_key("metrics/mAP50-95(B)") == "metrics/mAP50-95_B"
    assert metric_key("train/box_loss") == "train/box_loss"
    assert metric_key("../x") == "_/x"


def test_heartbeats_give_one_metric_per_key_and_epoch_and_skip_keepalives_and_gaps() -> None:
    events = [
        _heartbeat(1, 1, **{"metrics/mAP50(B)": 0.1}),
        {"seq": 2, "type": "log", "data": {}},
        _heartbeat(3, 1),  # a keep-alive within epoch 1
        _heartbeat(4, 2, **{"metrics/mAP50(B)": 0.3, "val/loss": None}),
        _heartbeat(5, 2, **{"metrics/mAP50(B)": 0.4}),
    ]

    metrics = heartbeat_metrics(events)

    assert [(m.key, m.step, m.value) for m in metrics] == [
        ("metrics/mAP50_B", 1, 0.1),
        ("metrics/mAP50_B", 2, 0.4),
    ]


def test_epochs_already_on_the_run_are_skipped_when_a_resumed_attempt_reports_them_again() -> None:
    events = [
        _heartbeat(7, 2, **{"metrics/mAP50(B)": 0.21}),  # attempt 2: its checkpoint's epoch
        _heartbeat(9, 3, **{"metrics/mAP50(B)": 0.3}),
    ]

    metrics = heartbeat_metrics(events, after_epoch=2)

    assert [(m.step, m.value) for m in metrics] == [(3, 0.3)]


def _retried(seq: int, attempt: int) -> dict[str, Any]:
    return {"seq": seq, "type": "attempt_retried", "data": {"attempt": attempt}}


def test_the_first_attempt_to_report_an_epoch_keeps_it_and_a_resumed_attempt_adds_the_rest() -> (
    None
):
    events = [
        _heartbeat(1, 1, **{"metrics/mAP50(B)": 0.1}),
        _heartbeat(2, 2, **{"metrics/mAP50(B)": 0.2}),
        _retried(3, 2),
        _heartbeat(4, 2, **{"metrics/mAP50(B)": 0.25}),  # attempt 2: its checkpoint's epoch
        _heartbeat(5, 3, **{"metrics/mAP50(B)": 0.3}),
        _heartbeat(6, 3, **{"metrics/mAP50(B)": 0.35}),  # within attempt 2: the last wins
    ]

    metrics = heartbeat_metrics(events)

    assert [(m.step, m.value, m.timestamp) for m in metrics] == [
        (1, 0.1, heartbeat_metrics(events[:1])[0].timestamp),
        (2, 0.2, heartbeat_metrics(events[1:2])[0].timestamp),
        (3, 0.35, heartbeat_metrics(events[5:])[0].timestamp),
    ]


def test_a_late_write_of_a_cancelled_sync_and_the_next_attempts_sync_give_one_point_per_epoch(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    ref = tracker.ensure_run(_job_id(), {}, [])
    attempt_1 = [_heartbeat(1, 1, **{"metrics/mAP50(B)": 0.1}), _heartbeat(2, 2, **{"x": 0.2})]
    attempt_2 = [_retried(3, 2), _heartbeat(4, 2, **{"x": 0.25}), _heartbeat(5, 3, **{"x": 0.3})]
    tracker.log_metrics(ref.run_id, heartbeat_metrics(attempt_1[:1]), SyncCursor(1, 1))

    # Attempt 2's sync reads the cursor before attempt 1's write of epoch 2 lands.
    stale = tracker.sync_cursor(ref.run_id)
    tracker.log_metrics(ref.run_id, heartbeat_metrics(attempt_1[1:]), SyncCursor(2, 2))
    resumed = heartbeat_metrics([*attempt_1[1:], *attempt_2], after_epoch=stale.epoch)
    tracker.log_metrics(ref.run_id, resumed, SyncCursor(5, 3))

    history = client.get_metric_history(ref.run_id, "x")
    assert sorted((m.step, m.value) for m in history) == [(2, 0.2), (3, 0.3)]


def test_final_metrics_get_their_own_keys_so_epoch_curves_keep_one_point_per_epoch() -> None:
    metrics = final_metrics({"metrics/mAP50(B)": 0.5, "fitness": None, "n": True}, 3, 1000)

    assert [(m.key, m.value, m.step) for m in metrics] == [("final/metrics/mAP50_B", 0.5, 3)]


def test_a_run_is_tagged_with_the_jobs_owner_project_request_and_attempt() -> None:
    job = JOB | {"owner": "alice", "project_slug": "vision"}

    assert run_tags(job, 2) == {
        "trainyard.owner": "alice",
        "trainyard.project": "vision",
        "trainyard.framework": "ultralytics",
        "trainyard.model": "yolo11n.yaml",
        "trainyard.dataset": "shapes",
        "trainyard.attempt": "2",
    }


def test_the_registered_model_is_named_after_framework_and_architecture() -> None:
    assert model_name_for("ultralytics", "yolo11n.yaml") == "trainyard-ultralytics-yolo11n"
    assert model_name_for("ultralytics", "runs/my model.pt") == "trainyard-ultralytics-my-model"


def test_without_a_tracking_uri_jobs_are_not_tracked(tmp_path: Path) -> None:
    assert build_tracker(WorkerSettings(data_dir=tmp_path, mlflow_tracking_uri=None)) is None


def test_a_job_gets_one_run_named_after_it_with_its_request_as_params(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    job_id = _job_id()

    job = JOB | {"owner": "alice", "project_slug": "vision"}

    first = tracker.ensure_run(job_id, run_tags(job, 1), run_params(job))
    again = tracker.ensure_run(job_id, run_tags(job, 1), run_params(job))

    assert again == first
    run = client.get_run(first.run_id)
    assert run.info.run_name == job_id
    assert run.data.tags["trainyard.owner"] == "alice"
    assert run.data.tags["trainyard.project"] == "vision"
    assert run.data.params["model"] == "yolo11n.yaml"
    assert run.data.params["epochs"] == "3"
    assert run.data.params["hp.lr0"] == "0.01"
    assert client.get_experiment(first.experiment_id).name == "trainyard"


def test_epoch_metrics_are_logged_as_steps_and_the_cursor_moves_with_them(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    ref = tracker.ensure_run(_job_id(), {}, [])
    beats = [_heartbeat(seq, seq, **{"metrics/mAP50(B)": seq / 10}) for seq in (1, 2, 3)]

    tracker.log_metrics(ref.run_id, heartbeat_metrics(beats[:2]), 2)
    tracker.log_metrics(ref.run_id, heartbeat_metrics(beats[2:]), 3)

    history = client.get_metric_history(ref.run_id, "metrics/mAP50_B")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert tracker.synced_seq(ref.run_id) == 3
    assert client.get_run(ref.run_id).data.tags[SYNCED_SEQ_TAG] == "3"


def test_the_cursor_also_keeps_the_newest_epoch_logged(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    ref = tracker.ensure_run(_job_id(), {}, [])
    beats = [_heartbeat(seq, seq, **{"metrics/mAP50(B)": seq / 10}) for seq in (1, 2)]

    tracker.log_metrics(ref.run_id, heartbeat_metrics(beats), SyncCursor(seq=5, epoch=2))

    assert tracker.sync_cursor(ref.run_id) == SyncCursor(seq=5, epoch=2)


def _system_beat(seq: int, cpu: float, gpus: int = 2) -> dict[str, Any]:
    beat = _heartbeat(seq, 1)
    beat["data"]["system"] = {
        "cpu_percent": cpu,
        "ram_bytes": 2**31,
        "data_wait_ratio": 0.5,
        "gpus": [
            {
                "index": i,
                "utilization_ratio": 0.25 * (i + 1),
                "memory_used_bytes": (i + 1) * 2**30,
                "memory_total_bytes": 2**36,
            }
            for i in range(gpus)
        ],
    }
    return beat


def test_a_rounds_newest_heartbeat_gives_one_point_per_system_metric() -> None:
    events = [
        _system_beat(4, cpu=100.0),
        _system_beat(5, cpu=300.0),
        _heartbeat(6, 2, loss=0.5),  # an epoch's heartbeat from a trainer without them
        {"seq": 7, "type": "log", "data": {"system": {"cpu_percent": 1.0}}},
    ]

    points = {m.key: (m.value, m.step) for m in system_metrics(events)}

    assert points == {
        "system/cpu_percent": (300.0, 5),
        "system/ram_bytes": (2.0**31, 5),
        "system/data_wait_ratio": (0.5, 5),  # no samples_per_s: none was sent
        "system/gpu0_utilization_ratio": (0.25, 5),
        "system/gpu0_memory_used_bytes": (2.0**30, 5),
        "system/gpu1_utilization_ratio": (0.5, 5),
        "system/gpu1_memory_used_bytes": (2.0**31, 5),
    }
    assert system_metrics([_heartbeat(1, 1, loss=1.0)]) == []
    broken = _system_beat(9, cpu=-5.0)  # not what the backend accepts: skipped, not fatal
    assert {m.step for m in system_metrics([_system_beat(8, 1.0), broken])} == {8}


def test_system_metrics_are_logged_against_the_heartbeats_seq(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    ref = tracker.ensure_run(_job_id(), {}, [])
    rounds = [[_system_beat(1, 50.0), _system_beat(2, 150.0)], [_system_beat(3, 250.0, gpus=1)]]

    for events in rounds:
        tracker.log_metrics(ref.run_id, system_metrics(events), events[-1]["seq"])
    tracker.log_metrics(ref.run_id, system_metrics(rounds[-1]), 3)  # a second writer: no twin

    cpu = client.get_metric_history(ref.run_id, "system/cpu_percent")
    assert sorted((m.step, m.value) for m in cpu) == [(2, 150.0), (3, 250.0)]
    gpu1 = client.get_metric_history(ref.run_id, "system/gpu1_utilization_ratio")
    assert [(m.step, m.value) for m in gpu1] == [(2, 0.5)]
    assert tracker.sync_cursor(ref.run_id) == SyncCursor(seq=3)


def test_weights_are_uploaded_and_registered_once_as_a_model_version(
    tracker: MlflowTracker, client: MlflowClient, tmp_path: Path
) -> None:
    ref = tracker.ensure_run(_job_id(), {}, [])
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    name = f"trainyard-test-{uuid.uuid4().hex[:8]}"

    tracker.log_file(ref.run_id, weights, "weights")
    status = tracker.end(ref.run_id, "SUCCEEDED")
    version = tracker.register(ref.run_id, name, "weights")
    again = tracker.register(ref.run_id, name, "weights")

    assert status == "FINISHED"
    assert [a.path for a in client.list_artifacts(ref.run_id, "weights")] == ["weights/best.pt"]
    assert version == again == "1"
    registered = client.get_model_version(name, version)
    assert registered.run_id == ref.run_id
    assert client.get_run(ref.run_id).info.status == "FINISHED"


@pytest.mark.parametrize(("state", "status"), [("FAILED", "FAILED"), ("CANCELLED", "KILLED")])
def test_a_run_ends_with_the_status_of_the_jobs_terminal_state(
    tracker: MlflowTracker, client: MlflowClient, state: str, status: str
) -> None:
    ref = tracker.ensure_run(_job_id(), {}, [])

    tracker.end(ref.run_id, state)

    assert client.get_run(ref.run_id).info.status == status
