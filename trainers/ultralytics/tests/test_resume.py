"""End to end: an attempt SIGKILLed after its epoch-2 checkpoint, and the attempts after it that
resume from that checkpoint (``TRAINYARD_RESUME_FROM``) — the real entrypoint, real training."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from conftest import make_dataset, trainer_env
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


def test_next_attempt_goes_on_with_the_checkpoints_metrics_rows_and_its_own_arguments(
    callback_server: CallbackServer, interrupted: Interrupted, tmp_path: Path
) -> None:
    """What the conformance suite's resume test cannot see: Ultralytics' own resume with this
    attempt's arguments, and the exact rows and metrics carried over. (The events, progress,
    artifacts and the untouched earlier folder are the conformance suite's, for every trainer.)"""
    out = tmp_path / "attempt-2"
    env = trainer_env(
        callback_server.url,
        interrupted.dataset,
        out,
        tmp_path / "home",
        TRAINYARD_ATTEMPT="2",
        TRAINYARD_EPOCHS=str(EPOCHS),
        TRAINYARD_RESUME_FROM=str(interrupted.checkpoint),
    )

    result = run_trainer(env, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "from epoch 3 to 4 total epochs" in output  # Ultralytics' own resume
    calls = callback_server.snapshot()
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    # Epoch 2's metrics (which attempt 1 never sent) come from the checkpoint, then the new epochs.
    assert metric_epochs(calls) == [2, 3, 4], "epochs 1 and 2 are not trained again"
    first = results_rows(interrupted.output_dir / "run" / "results.csv")
    header = (interrupted.output_dir / "run" / "results.csv").read_text().splitlines()[0]
    expected = dict(zip(header.split(",")[2:], map(float, first[1][2:]), strict=True))
    assert heartbeats[0]["metrics"] == pytest.approx(expected)
    checkpoints = checkpoint_events(calls)
    assert {c["path"] for c in checkpoints} == {str(out / "run" / "weights" / "last.pt")}
    # Attempt 1's rows, exactly, then the two new epochs.
    rows = results_rows(out / "run" / "results.csv")
    assert rows[:2] == first[:2]
    args = yaml.safe_load((out / "run" / "args.yaml").read_text(encoding="utf-8"))
    assert (args["epochs"], args["save_dir"]) == (EPOCHS, str(out / "run"))
    data = yaml.safe_load(Path(args["data"]).read_text(encoding="utf-8"))
    assert data["path"] == str(interrupted.dataset)


def test_resume_from_an_s3_checkpoint_publishes_under_the_new_attempt(
    callback_server: CallbackServer, s3: S3Endpoint, interrupted: Interrupted, tmp_path: Path
) -> None:
    bucket = s3.bucket(f"trainyard-{uuid.uuid4().hex[:8]}")
    s3.upload_folder(interrupted.checkpoint.parent, bucket, "jobs/job_test/attempt-1/run/weights")
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
        **s3.env(),
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    calls = callback_server.snapshot()
    heartbeats = [c.body for c in calls if c.kind == "heartbeat"]
    assert heartbeats[0]["epoch"] == 2
    assert all(hb["epochs"] == 3 for hb in heartbeats)
    assert metric_epochs(calls) == [2, 3]
    [checkpoint] = checkpoint_events(calls)
    assert (checkpoint["path"], checkpoint["epoch"]) == (f"{output_uri}/run/weights/last.pt", 3)
    # Whether epoch 3 beats the restored best is up to the training; if so, it is published too.
    assert checkpoint.get("best", f"{output_uri}/run/weights/best.pt") == (
        f"{output_uri}/run/weights/best.pt"
    )
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
@pytest.mark.parametrize("problem", ["truncated", "already complete"])
def test_unusable_checkpoint_fails_the_attempt_naming_it(
    callback_server: CallbackServer, interrupted: Interrupted, tmp_path: Path, problem: str
) -> None:
    epochs = EPOCHS
    if problem == "truncated":  # a checkpoint torn by a kill mid-write, were saves not atomic
        checkpoint = tmp_path / "torn" / "last.pt"
        checkpoint.parent.mkdir()
        whole = interrupted.checkpoint.read_bytes()
        checkpoint.write_bytes(whole[: len(whole) // 2])
        expected = f"ResumeError: checkpoint {checkpoint} (TRAINYARD_RESUME_FROM) is unreadable"
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
