"""A real tiny training through the whole embedded platform: HTTP → Temporal → trainer → stream."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .helpers import (
    TERMINAL,
    cancel_and_check_trainer_gone,
    read_stream,
    resumed_to_success,
    states_of,
    submit,
    trainer_pid,
    ultralytics_task_of,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("e2e")


def test_tiny_training_streams_every_event_in_order_to_succeeded_with_loadable_weights(
    api: httpx.Client, shapes: GeneratedDataset, trainer_python: Path
) -> None:
    job = submit(api, shapes.uri, epochs=2)

    events, close_code = read_stream(api, job["id"])

    assert close_code == 1000
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert states_of(events) == ["VALIDATING", "STARTING", "RUNNING", "SUCCEEDED"]
    epochs = [
        e["data"]["epoch"] for e in events if e["type"] == "heartbeat" and e["data"]["metrics"]
    ]
    assert epochs == [1, 2]
    assert any(e["type"] == "validation_report" for e in events)
    assert any(e["type"] == "checkpoint_saved" for e in events)

    final = api.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "SUCCEEDED"
    assert final["last_seq"] == len(events)
    weights = Path(final["result"]["artifacts"]["weights"])
    assert weights.is_file()
    assert ultralytics_task_of(trainer_python, weights) == "detect"


def test_reconnecting_with_after_seq_gives_the_rest_without_gap_or_duplicate(
    api: httpx.Client, shapes: GeneratedDataset
) -> None:
    job = submit(api, shapes.uri, epochs=2)

    first, _ = read_stream(api, job["id"], limit=3)
    rest, close_code = read_stream(api, job["id"], after_seq=first[-1]["seq"])

    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert close_code == 1000
    assert states_of(first + rest)[-1] == "SUCCEEDED"
    stored = api.get(f"/v1/jobs/{job['id']}/events", params={"after_seq": 0}).json()
    stored_items = stored["items"] if isinstance(stored, dict) else stored
    assert [e["seq"] for e in stored_items] == seqs


def test_cancel_mid_run_ends_cancelled_and_the_trainer_process_is_gone(
    api: httpx.Client, shapes: GeneratedDataset
) -> None:
    job = submit(api, shapes.uri, epochs=200)
    running = wait_for(api, job["id"], lambda j: j["state"] == "RUNNING" or j["state"] in TERMINAL)
    assert running["state"] == "RUNNING"
    cancel_and_check_trainer_gone(api, job["id"])
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409


def test_the_background_services_yield_the_cpu_to_the_training(
    api: httpx.Client, platform: EmbeddedPlatform, shapes: GeneratedDataset
) -> None:
    job = submit(api, shapes.uri, epochs=200)
    running = wait_for(api, job["id"], lambda j: j["state"] == "RUNNING" or j["state"] in TERMINAL)
    assert running["state"] == "RUNNING"
    policies = {name: os.sched_getscheduler(pid) for name, pid in platform.pids.items()}
    trainer = os.sched_getscheduler(trainer_pid(api, job["id"]))
    temporal_env = Path(f"/proc/{platform.pids['temporal']}/environ").read_bytes().split(b"\0")
    cancel_and_check_trainer_gone(api, job["id"])

    assert policies == {
        "mlflow": os.SCHED_IDLE,
        "temporal": os.SCHED_IDLE,
        "api": os.SCHED_IDLE,
        "worker": os.SCHED_OTHER,
    }
    assert trainer == os.SCHED_OTHER  # started by the worker, at the priority it was given
    assert f"GOMAXPROCS={os.environ.get('GOMAXPROCS', '1')}".encode() in temporal_env


EPOCHS = 5


def test_a_trainer_stopped_from_outside_is_interrupted_and_resumed_not_cancelled(
    api: httpx.Client, platform: EmbeddedPlatform, shapes: GeneratedDataset
) -> None:
    # What a preempted pod's trainer sees: SIGTERM that nobody on the platform sent.
    job = submit(api, shapes.uri, epochs=EPOCHS)

    _, retried, events = resumed_to_success(
        api, platform, job["id"], signal.SIGTERM, EPOCHS, "train/box_loss"
    )

    assert retried["data"]["interrupted"] is True
    assert retried["message"].startswith("attempt 1 was interrupted (")
    assert "not counted as a failure" in retried["message"]
    assert "CANCELLED" not in states_of(events)


def test_a_dataset_that_fails_validation_fails_the_job_before_any_trainer_starts(
    api: httpx.Client, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    (broken / "images" / "train").mkdir(parents=True)
    (broken / "images" / "val").mkdir(parents=True)
    (broken / "data.yaml").write_text("train: images/train\nval: images/val\nnames: {0: a}\n")

    job = submit(api, broken.resolve().as_uri())
    events, _ = read_stream(api, job["id"])

    final = api.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "FAILED"
    assert "validation" in final["reason"]
    assert "STARTING" not in states_of(events)
    assert not [e for e in events if e["type"] == "attempt_launched"]
