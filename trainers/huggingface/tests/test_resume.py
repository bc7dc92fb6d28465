"""End to end: an attempt SIGKILLed right after its epoch-2 checkpoint, and the attempts after it
that resume from that checkpoint folder (``TRAINYARD_RESUME_FROM``) — the real entrypoint, real
training, locally and through object storage."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from conftest import make_image_dataset, trainer_env
from trainer_kit.storage import S3Location, S3Storage
from trainer_kit.testing.attempts import (
    Interrupted,
    checkpoint_events,
    interrupted_attempt,
    metric_epochs,
    results_rows,
)
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import run_trainer
from trainer_kit.testing.s3 import S3_SECRET, S3Endpoint

EPOCHS = 4


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Interrupted:
    """Attempt 1 of a 4-epoch job, killed right after it announced its epoch-2 checkpoint."""
    root = tmp_path_factory.mktemp("interrupted")
    return interrupted_attempt(
        root,
        make_dataset=make_image_dataset,
        make_env=lambda url, dataset, out: trainer_env(
            url, dataset, out, root / "home", TRAINYARD_EPOCHS=str(EPOCHS)
        ),
        timeout=180,
    )


def test_killed_attempt_left_its_epoch_2_checkpoint(interrupted: Interrupted) -> None:
    assert [c["epoch"] for c in checkpoint_events(interrupted.calls)] == [1, 2]
    assert interrupted.checkpoint.parent == interrupted.output_dir / "run" / "checkpoints"
    assert (interrupted.checkpoint / "COMPLETE").is_file()
    # Killed while announcing the checkpoint: epoch 2's heartbeat never went out.
    assert metric_epochs(interrupted.calls) == [1]
    assert all(c.kind != "done" for c in interrupted.calls)
    assert not any(".partial" in name for name in interrupted.files)


def test_next_attempt_goes_on_with_the_checkpoints_metrics_rows_and_step_count(
    callback_server: CallbackServer, interrupted: Interrupted, tmp_path: Path
) -> None:
    """What the conformance suite's resume test cannot see: the exact rows and metrics carried
    over, and the Trainer's step count. (The events, progress, artifacts and the untouched
    earlier folder are the conformance suite's, for every trainer.)"""
    out = tmp_path / "attempt-2"
    env = trainer_env(
        callback_server.url,
        interrupted.dataset,
        out,
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS=str(EPOCHS),
        TRAINYARD_RESUME_FROM=interrupted.checkpoint.as_uri(),
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"resuming from {interrupted.checkpoint.as_uri()} after epoch 2 of 4" in output
    calls = callback_server.snapshot()
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    # Epoch 2's metrics (which attempt 1 never sent) come from the checkpoint, then the new epochs.
    assert metric_epochs(calls) == [2, 3, 4], "epochs 1 and 2 are not trained again"
    first = results_rows(interrupted.output_dir / "run" / "results.csv")
    header = (interrupted.output_dir / "run" / "results.csv").read_text().splitlines()[0]
    expected = {
        name: float(value)
        for name, value in zip(header.split(",")[1:], first[1][1:], strict=True)
        if value
    }
    assert heartbeats[0]["metrics"] == pytest.approx(expected)
    checkpoints = checkpoint_events(calls)
    assert all(Path(c["path"]).parent == out / "run" / "checkpoints" for c in checkpoints)
    state = json.loads((Path(checkpoints[-1]["path"]) / "trainer_state.json").read_text())
    assert state["epoch"] == EPOCHS
    assert (
        state["global_step"]
        == 2
        * json.loads((interrupted.checkpoint / "trainer_state.json").read_text())["global_step"]
    )
    # Attempt 1's rows, exactly, then the two new epochs.
    rows = results_rows(out / "run" / "results.csv")
    assert rows[:2] == first[:2]


def test_resume_from_s3_with_the_dataset_in_s3_publishes_under_the_new_attempt(
    callback_server: CallbackServer, s3: S3Endpoint, interrupted: Interrupted, tmp_path: Path
) -> None:
    bucket = s3.bucket(f"trainyard-{uuid.uuid4().hex[:8]}")
    # Attempt 1 as if it had published to storage: the checkpoint folder with its marker.
    attempt_1 = S3Location.parse(f"s3://{bucket}/jobs/job_test/attempt-1")
    relative = f"run/checkpoints/{interrupted.checkpoint.name}"
    resume_from = S3Storage(s3.client()).upload_folder_atomic(
        interrupted.checkpoint,
        attempt_1,
        relative,
        "COMPLETE",
        (interrupted.checkpoint / "COMPLETE").read_bytes(),
    )
    s3.upload_folder(interrupted.dataset, bucket, "datasets/alice/ds 1")
    out = tmp_path / "attempt-2"
    output_uri = f"s3://{bucket}/jobs/job_test/attempt-2"
    env = trainer_env(
        callback_server.url,
        tmp_path / "nowhere",
        out,
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS="3",  # this attempt's total wins over the checkpoint's 4
        TRAINYARD_DATASET_URI=f"s3://{bucket}/datasets/alice/ds%201",
        TRAINYARD_OUTPUT_URI=output_uri,
        TRAINYARD_RESUME_FROM=resume_from,
        **s3.env(),
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "to download" in output  # dataset download progress in the log
    calls = callback_server.snapshot()
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert heartbeats[0]["epoch"] == 2
    assert all(hb["epochs"] == 3 for hb in heartbeats)
    assert metric_epochs(calls) == [2, 3]
    [checkpoint] = checkpoint_events(calls)
    step = Path(checkpoint["path"]).name
    assert checkpoint == {
        "path": f"{output_uri}/run/checkpoints/{step}",
        "epoch": 3,
        # The fingerprint of the folder exactly as it was uploaded (the next attempt checks it).
        "size": checkpoint["size"],
        "sha256": checkpoint["sha256"],
    }
    assert checkpoint["size"] > 0
    assert len(checkpoint["sha256"]) == 64
    done = calls[-1].body
    assert (calls[-1].kind, done["status"]) == ("done", "succeeded")
    assert done["artifacts"] == {
        "weights": f"{output_uri}/run/model",
        "last": checkpoint["path"],
        "results": f"{output_uri}/run/results.csv",
        "run_dir": f"{output_uri}/run",
    }
    keys = s3.keys(bucket)
    assert not [k for k in keys if ".partial" in k], "temporary keys left behind"
    published = f"jobs/job_test/attempt-2/run/checkpoints/{step}/"
    names = {k.removeprefix(published) for k in keys if k.startswith(published)}
    assert {"COMPLETE", "model.safetensors", "optimizer.pt", "trainer_state.json"} <= names
    assert "jobs/job_test/attempt-2/run/model/model.safetensors" in keys
    assert "jobs/job_test/attempt-2/run/model/COMPLETE" in keys
    body = s3.client().get_object(Bucket=bucket, Key="jobs/job_test/attempt-2/run/results.csv")
    assert [line.split(",")[0] for line in body["Body"].read().decode().splitlines()[1:]] == [
        "1",
        "2",
        "3",
    ]
    assert S3_SECRET not in output + json.dumps([c.body for c in calls])


# A checkpoint that is not there: the conformance suite's, for every trainer.
@pytest.mark.parametrize("problem", ["truncated", "already complete"])
def test_unusable_checkpoint_fails_the_attempt_naming_it(
    callback_server: CallbackServer, interrupted: Interrupted, tmp_path: Path, problem: str
) -> None:
    epochs = EPOCHS
    if problem == "truncated":  # a checkpoint torn by a kill mid-write, were saves not atomic
        checkpoint = tmp_path / "torn" / interrupted.checkpoint.name
        shutil.copytree(interrupted.checkpoint, checkpoint)
        weights = checkpoint / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        expected = (
            f"ResumeError: checkpoint {checkpoint} (TRAINYARD_RESUME_FROM) is damaged: "
            "model.safetensors has 100 bytes"
        )
    else:
        checkpoint, epochs = interrupted.checkpoint, 2
        expected = (
            f"ResumeError: checkpoint {checkpoint} (TRAINYARD_RESUME_FROM) already holds 2 of 2 "
            "epochs: nothing left to resume"
        )
    env = trainer_env(
        callback_server.url,
        interrupted.dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS=str(epochs),
        TRAINYARD_RESUME_FROM=str(checkpoint),
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["failed"]
    assert done[0].body["reason"].startswith(expected)
    assert callback_server.of("heartbeat") == [], "no progress is claimed from a bad checkpoint"
    assert not (tmp_path / "out" / "run" / "checkpoints").exists() or not list(
        (tmp_path / "out" / "run" / "checkpoints").iterdir()
    )
