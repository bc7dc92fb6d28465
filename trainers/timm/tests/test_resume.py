"""An attempt SIGKILLed after its epoch-2 checkpoint, and the attempts after it that resume from
that checkpoint (``TRAINYARD_RESUME_FROM``): the real entrypoint, real training."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import make_dataset, run_in_process, trainer_env
from trainer_kit.fingerprint import Fingerprint, fingerprint
from trainer_kit.testing.attempts import (
    Interrupted,
    checkpoint_events,
    interrupted_attempt,
    metric_epochs,
    results_rows,
)
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.processes import run_trainer
from trainer_kit.testing.s3 import S3Endpoint

EPOCHS = 4


def announced_as(event: dict[str, Any]) -> dict[str, str]:
    """The fingerprint variables the platform sets from a checkpoint_saved event."""
    return {
        "TRAINYARD_RESUME_SIZE": str(event["size"]),
        "TRAINYARD_RESUME_SHA256": event["sha256"],
    }


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Interrupted:
    """Attempt 1 of a 4-epoch job, killed right after it announced its epoch-2 checkpoint."""
    root = tmp_path_factory.mktemp("interrupted")
    return interrupted_attempt(
        root,
        make_dataset=make_dataset,
        make_env=lambda url, dataset, out: trainer_env(
            url, dataset, out, root / "home", TRAINYARD_EPOCHS=str(EPOCHS)
        ),
    )


def test_killed_attempt_left_its_epoch_2_checkpoint(interrupted: Interrupted) -> None:
    assert [c["epoch"] for c in checkpoint_events(interrupted.calls)] == [1, 2]
    assert interrupted.checkpoint == interrupted.output_dir / "run" / "weights" / "last.pt"
    # Killed while announcing the checkpoint: epoch 2's heartbeat never went out.
    assert metric_epochs(interrupted.calls) == [1]
    assert all(c.kind != "done" for c in interrupted.calls)
    assert not any(name.endswith(".partial") for name in interrupted.files)
    # Each announcement carries what the file was then: the next attempt checks it.
    announced = checkpoint_events(interrupted.calls)[-1]
    assert Fingerprint(announced["size"], announced["sha256"]) == fingerprint(
        interrupted.checkpoint
    )


def test_next_attempt_goes_on_with_the_checkpoints_metrics_rows_and_lr_schedule(
    callback_server: CallbackServer, interrupted: Interrupted, tmp_path: Path
) -> None:
    """What the conformance suite's resume test cannot see: the exact rows and metrics carried
    over, and the optimizer schedule. (The events, progress, artifacts and the untouched earlier
    folder are the conformance suite's, for every trainer.)"""
    out = tmp_path / "attempt-2"
    env = trainer_env(
        callback_server.url,
        interrupted.dataset,
        out,
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS=str(EPOCHS),
        TRAINYARD_RESUME_FROM=str(interrupted.checkpoint),
        **announced_as(checkpoint_events(interrupted.calls)[-1]),
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "resuming after epoch 2 of 4" in output
    calls = callback_server.snapshot()
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    # Epoch 2's metrics (which attempt 1 never sent) come from the checkpoint, then the new epochs.
    assert metric_epochs(calls) == [2, 3, 4], "epochs 1 and 2 are not trained again"
    first = results_rows(interrupted.output_dir / "run" / "results.csv")
    header = (interrupted.output_dir / "run" / "results.csv").read_text().splitlines()[0]
    expected = dict(zip(header.split(",")[1:], map(float, first[1][1:]), strict=True))
    assert heartbeats[0]["metrics"] == expected
    checkpoints = checkpoint_events(calls)
    assert {c["path"] for c in checkpoints} == {str(out / "run" / "weights" / "last.pt")}
    # The learning-rate schedule goes on where it was: cosine from 0.001 over 4 epochs.
    lrs = [hb["metrics"]["lr"] for hb in heartbeats if hb["metrics"]]
    assert lrs == pytest.approx([0.0005 * (1 + math.cos(math.pi * e / 4)) for e in (1, 2, 3)])
    # Attempt 1's rows, exactly, then the two new epochs.
    rows = results_rows(out / "run" / "results.csv")
    assert rows[:2] == first[:2]


def test_resume_from_an_s3_checkpoint_publishes_under_the_new_attempt(
    callback_server: CallbackServer,
    s3: S3Endpoint,
    interrupted: Interrupted,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3.bucket(f"trainyard-{uuid.uuid4().hex[:8]}")
    s3.upload_folder(interrupted.checkpoint.parent, bucket, "jobs/job_test/attempt-1/run/weights")
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "attempt-2"
    output_uri = f"s3://{bucket}/jobs/job_test/attempt-2"
    resume_from = f"s3://{bucket}/jobs/job_test/attempt-1/run/weights/last.pt"
    env = trainer_env(
        callback_server.url,
        interrupted.dataset,
        out,
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS="3",  # this attempt's total wins over the checkpoint's 4
        TRAINYARD_OUTPUT_URI=output_uri,
        TRAINYARD_RESUME_FROM=resume_from,
    )

    assert run_in_process(env) == 0

    calls = callback_server.snapshot()
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert heartbeats[0]["epoch"] == 2
    assert all(hb["epochs"] == 3 for hb in heartbeats)
    assert metric_epochs(calls) == [2, 3]
    [checkpoint] = checkpoint_events(calls)
    assert (checkpoint["path"], checkpoint["epoch"]) == (f"{output_uri}/run/weights/last.pt", 3)
    done = calls[-1].body
    assert (calls[-1].kind, done["status"]) == ("done", "succeeded")
    assert done["artifacts"] == {
        "weights": f"{output_uri}/run/weights/best.pt",
        "last": f"{output_uri}/run/weights/last.pt",
        "results": f"{output_uri}/run/results.csv",
        "run_dir": f"{output_uri}/run",
    }
    assert [int(row[0]) for row in results_rows(out / "run" / "results.csv")] == [1, 2, 3]
    keys = s3.keys(bucket)
    assert not [k for k in keys if k.endswith(".partial")]
    assert all(k.startswith("jobs/job_test/attempt-2/") for k in keys if "attempt-1" not in k)


# A checkpoint that is not there: the conformance suite's, for every trainer.
@pytest.mark.parametrize(
    "problem", ["truncated", "weights only", "already complete", "other classes", "swapped"]
)
def test_unusable_checkpoint_fails_the_attempt_naming_it(
    callback_server: CallbackServer, interrupted: Interrupted, tmp_path: Path, problem: str
) -> None:
    epochs, dataset = EPOCHS, interrupted.dataset
    fingerprint_env: dict[str, str] = {}
    checkpoint = interrupted.checkpoint
    prefix = f"ResumeError: checkpoint {checkpoint} (TRAINYARD_RESUME_FROM)"
    if problem == "truncated":  # a checkpoint torn by a kill mid-write, were saves not atomic
        checkpoint = tmp_path / "torn" / "last.pt"
        checkpoint.parent.mkdir()
        whole = interrupted.checkpoint.read_bytes()
        checkpoint.write_bytes(whole[: len(whole) // 2])
        expected = f"ResumeError: checkpoint {checkpoint} (TRAINYARD_RESUME_FROM) is unreadable"
    elif problem == "weights only":
        checkpoint = interrupted.checkpoint.with_name("best.pt")
        expected = f"ResumeError: checkpoint {checkpoint} (TRAINYARD_RESUME_FROM) holds no training"
    elif problem == "already complete":
        epochs = 2
        expected = f"{prefix} already holds 2 of 2 epochs: nothing left to resume"
    elif problem == "swapped":  # not the file epoch 1's checkpoint_saved announced any more
        fingerprint_env = announced_as(checkpoint_events(interrupted.calls)[0])
        expected = f"{prefix} is not the one its checkpoint_saved announced"
    else:
        dataset = make_dataset(tmp_path / "other")
        (dataset / "train" / "circle").rename(dataset / "train" / "disc")
        (dataset / "val" / "circle").rename(dataset / "val" / "disc")
        expected = "ResumeError: checkpoint "
    env = trainer_env(
        callback_server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS=str(epochs),
        TRAINYARD_RESUME_FROM=str(checkpoint),
        **fingerprint_env,
    )

    assert run_in_process(env) == 1

    done = callback_server.of("done")
    assert [d.body["status"] for d in done] == ["failed"]
    assert done[0].body["reason"].startswith(expected), done[0].body["reason"]
    if problem == "other classes":
        assert "was trained on classes" in done[0].body["reason"]
    else:
        assert callback_server.of("heartbeat") == [], "no progress claimed from a bad checkpoint"
