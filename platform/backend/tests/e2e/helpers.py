"""Small helpers the e2e tests share: job submission and reading the live stream."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from mlflow.tracking import MlflowClient
from websockets.sync.client import connect

from trainyard.cli.embedded import EmbeddedPlatform

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def submit(api: httpx.Client, dataset: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": dataset,
        "task": "detect",
        "epochs": 2,
        "imgsz": 64,
        "batch": 4,
        "gpus": 0,
        "hyperparameters": {"workers": 0},
    }
    body.update(overrides)
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def stream_url(api: httpx.Client, job_id: str, after_seq: int = 0) -> str:
    base = str(api.base_url).rstrip("/").replace("http", "ws", 1)
    return f"{base}/v1/jobs/{job_id}/stream?after_seq={after_seq}"


def read_stream(
    api: httpx.Client, job_id: str, after_seq: int = 0, limit: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Events from the stream until the server closes it (or `limit` events); and the close code."""
    events: list[dict[str, Any]] = []
    with connect(stream_url(api, job_id, after_seq), open_timeout=10) as ws:
        while limit is None or len(events) < limit:
            try:
                raw = ws.recv(timeout=300)
            except Exception:
                break
            events.append(json.loads(raw))
        code = ws.close_code
    return events, code


def wait_for(
    api: httpx.Client, job_id: str, predicate: Any, timeout_s: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting on {job_id}: last state {job['state']}")


def states_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["to"] for e in events if e["type"] == "state"]


def trainyard_executable() -> str:
    """The `trainyard` CLI of this environment."""
    beside_python = Path(sys.executable).parent / "trainyard"
    exe = str(beside_python) if beside_python.exists() else shutil.which("trainyard")
    if exe is None:
        raise AssertionError(
            "the `trainyard` CLI is not installed in this environment: run `uv sync`"
        )
    return exe


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


def trainer_pid(api: httpx.Client, job_id: str, attempt: int = 1) -> int:
    """The process id of the job's trainer of `attempt` (from its `attempt_launched` event)."""
    launched = [
        e
        for e in api.get(f"/v1/jobs/{job_id}/events").json()["items"]
        if e["type"] == "attempt_launched" and e["data"]["attempt"] == attempt
    ]
    return int(launched[0]["data"]["pid"])


def event_of(api: httpx.Client, job_id: str, type_: str, timeout_s: float = 120) -> dict[str, Any]:
    """The job's first event of `type_`, waiting for it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in api.get(f"/v1/jobs/{job_id}/events").json()["items"]:
            if event["type"] == type_:
                found: dict[str, Any] = event
                return found
        time.sleep(0.5)
    raise AssertionError(f"no {type_} event of {job_id} within {timeout_s:g}s")


def wait_until_gone(pid: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not pid_exists(pid)


def ultralytics_task_of(trainer_python: Path, weights: Path) -> str:
    """Load `weights` with ultralytics in the trainer's environment; the model's task."""
    loaded = subprocess.run(
        [
            str(trainer_python),
            "-c",
            f"from ultralytics import YOLO; print(YOLO({str(weights)!r}).task)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "YOLO_OFFLINE": "1"},
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    return loaded.stdout.strip().splitlines()[-1]


def cancel_and_check_trainer_gone(api: httpx.Client, job_id: str) -> dict[str, Any]:
    """Cancel a RUNNING job and check what every tier promises: 202, CANCELLED, no trainer left.

    Returns the final job.
    """
    current = api.get(f"/v1/jobs/{job_id}").json()["attempt"]
    pid = trainer_pid(api, job_id, current)
    assert pid_exists(pid)

    response = api.post(f"/v1/jobs/{job_id}/cancel")

    assert response.status_code == 202
    final = wait_for(api, job_id, lambda j: j["state"] in TERMINAL, timeout_s=60)
    assert final["state"] == "CANCELLED"
    assert wait_until_gone(pid)
    return final


def checkpoint_of_epoch(api: httpx.Client, job_id: str, epoch: int) -> dict[str, Any]:
    """The first `checkpoint_saved` event for `epoch` or later, once the trainer sent it."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for event in api.get(f"/v1/jobs/{job_id}/events").json()["items"]:
            if event["type"] == "checkpoint_saved" and event["data"]["epoch"] >= epoch:
                return dict(event)
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of epoch {epoch} from {job_id}")


def metric_epochs(events: list[dict[str, Any]]) -> list[int]:
    return [e["data"]["epoch"] for e in events if e["type"] == "heartbeat" and e["data"]["metrics"]]


def resumed_to_success(
    api: httpx.Client,
    platform: EmbeddedPlatform,
    job_id: str,
    stop: signal.Signals,
    epochs: int,
    epoch_metric: str,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Stop attempt 1 with `stop` after its epoch-2 checkpoint; check the job then succeeds
    with every one of its `epochs` trained once (`check_resumed_to_success`)."""
    checkpoint_of_epoch(api, job_id, 2)
    os.kill(trainer_pid(api, job_id), stop)
    return check_resumed_to_success(api, platform, job_id, epochs, epoch_metric)


def check_resumed_to_success(
    api: httpx.Client,
    platform: EmbeddedPlatform,
    job_id: str,
    epochs: int,
    epoch_metric: str,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Attempt 1 was stopped after a checkpoint: the job succeeds at attempt 2 with every one
    of its `epochs` trained once (its timeline, its run's results.csv, the `epoch_metric`
    curve of its MLflow run); the job, the attempt_retried event and the whole timeline."""
    final = wait_for(api, job_id, lambda j: j["state"] in TERMINAL)
    events, close_code = read_stream(api, job_id)
    assert close_code == 1000
    assert (final["state"], final["attempt"]) == ("SUCCEEDED", 2), final["reason"]
    [retried] = [e for e in events if e["type"] == "attempt_retried"]
    saved = [e for e in events if e["type"] == "checkpoint_saved" and e["seq"] < retried["seq"]]
    assert retried["data"]["resume_from"] == saved[-1]["data"]["path"]
    assert retried["data"]["resume_epoch"] == saved[-1]["data"]["epoch"] >= 2
    # Every epoch was trained once: attempt 2 picks up after the checkpoint, and the run's
    # history (results.csv, carried over from attempt 1) lists each epoch once.
    before = metric_epochs([e for e in events if e["seq"] < retried["seq"]])
    after = metric_epochs([e for e in events if e["seq"] > retried["seq"]])
    announced = retried["data"]["resume_epoch"]
    assert before == list(range(1, len(before) + 1))
    # last.pt is rewritten every epoch: a kill between saving epoch k+1 and announcing it leaves
    # epoch k+1 in the file announced as epoch k, and attempt 2 goes on from what the file holds.
    [restored] = [e for e in events if e["type"] == "checkpoint_restored"]
    resumed = restored["data"]["epoch"]
    assert resumed in (announced, announced + 1), (announced, resumed)
    assert after == list(range(resumed, epochs + 1)), ("attempt 2 goes on after", resumed, after)
    assert len(before) in (resumed - 1, resumed)  # killed before or after that epoch's heartbeat
    results = Path(final["result"]["artifacts"]["results"])
    assert results.parent.parent.name == "attempt-2"
    rows = results.read_text(encoding="utf-8").splitlines()[1:]
    assert [int(float(row.split(",")[0])) for row in rows] == list(range(1, epochs + 1))
    # The job's one MLflow run has each epoch once.
    tracked = wait_for(api, job_id, lambda j: bool((j.get("tracking") or {}).get("model_version")))
    mlflow_url = platform.config.mlflow_url
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    losses = client.get_metric_history(tracked["tracking"]["mlflow_run_id"], epoch_metric)
    steps = sorted(m.step for m in losses)
    assert steps == list(range(1, epochs + 1)), steps
    return final, retried, events
