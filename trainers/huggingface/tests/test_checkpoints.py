"""Checkpoint folders (manifest, publishing, rotation) and restoring them, without training."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from trainer_kit.publishing import RunPublisher
from trainer_kit.resume import ResumeError, ResumeSource
from trainer_kit.storage import S3Location, S3Storage
from trainer_kit.testing.s3 import S3Endpoint

from trainer.checkpoints import (
    MARKER,
    STATE_FILE,
    CheckpointError,
    CheckpointKeeper,
    CheckpointState,
    results_csv,
    verify,
    write_marker,
)
from trainer.resume import check_compatible, restore_checkpoint


def _state(**changes: object) -> CheckpointState:
    state = CheckpointState(
        completed_epochs=0,
        epochs=4,
        task="image-classification",
        classes=["blue", "red"],
        train_samples=16,
        per_device_batch=8,
        world_size=1,
        gradient_accumulation_steps=1,
    )
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def _trainer_checkpoint(folder: Path, step: int) -> Path:
    """What the Trainer writes into run/.staging/ (content is irrelevant here)."""
    staging = folder / ".staging" / f"checkpoint-{step}"
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"weights" * step)
    (staging / "optimizer.pt").write_bytes(b"optimizer")
    (staging / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return staging


def _publish_epochs(keeper: CheckpointKeeper, run: Path, epochs: int) -> list[str]:
    published = []
    for epoch in range(1, epochs + 1):
        keeper.record_epoch(epoch, {"val/accuracy": 0.5 + epoch / 10, "train/loss": 1.0 / epoch})
        published.append(keeper.publish(_trainer_checkpoint(run, epoch * 2)))
    return published


def test_keeper_publishes_whole_folders_and_keeps_the_newest_two(tmp_path: Path) -> None:
    run = tmp_path / "run"
    keeper = CheckpointKeeper(run, _state())

    published = _publish_epochs(keeper, run, 3)

    assert published == [str(run / "checkpoints" / f"checkpoint-{s}") for s in (2, 4, 6)]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert not list((run / ".staging").iterdir())
    newest = Path(published[-1])
    verify(newest)
    state = CheckpointState.from_json((newest / STATE_FILE).read_text())
    assert (state.completed_epochs, state.best_epoch) == (3, 3)
    assert state.best_metric == pytest.approx(0.8)
    assert [row["epoch"] for row in state.rows] == [1.0, 2.0, 3.0]
    assert state.last_metrics() == {"val/accuracy": pytest.approx(0.8), "train/loss": 1 / 3}
    lines = (run / "results.csv").read_text().splitlines()
    assert lines[0] == "epoch,train/loss,val/loss,val/accuracy,val/f1,lr,train/samples_per_s"
    assert lines[3].startswith("3,0.333")
    assert lines[3].split(",")[2] == "", "a metric missing that epoch is an empty cell"
    assert keeper.last == published[-1]


def test_keeper_publishes_to_storage_and_rotates_there_too(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.bucket(f"b-{uuid.uuid4().hex[:12]}")
    out = tmp_path / "out"
    (out / ".trainer").mkdir(parents=True)
    storage = S3Storage(s3.client(), attempts=2, wait_max_s=0.05)
    publisher = RunPublisher(lambda: storage, f"s3://{bucket}/jobs/j/attempt-1", out)
    keeper = CheckpointKeeper(out / "run", _state(), publisher)

    published = _publish_epochs(keeper, out / "run", 3)

    prefix = f"s3://{bucket}/jobs/j/attempt-1/run/checkpoints"
    assert published == [f"{prefix}/checkpoint-{s}" for s in (2, 4, 6)]
    folders = {key.split("/")[-2] for key in s3.keys(bucket)}
    assert folders == {"checkpoint-4", "checkpoint-6"}
    marker = s3.client().get_object(
        Bucket=bucket, Key="jobs/j/attempt-1/run/checkpoints/checkpoint-6/COMPLETE"
    )
    assert set(json.loads(marker["Body"].read())["files"]) == {
        "model.safetensors",
        "optimizer.pt",
        "trainer_state.json",
        STATE_FILE,
    }


def test_verify_names_what_is_wrong(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-2"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"12345")
    with pytest.raises(CheckpointError, match="no COMPLETE marker"):
        verify(folder)
    write_marker(folder)
    verify(folder)
    (folder / "a.bin").write_bytes(b"54321")
    with pytest.raises(CheckpointError, match=r"a\.bin does not match its SHA-256"):
        verify(folder)
    (folder / "a.bin").write_bytes(b"12")
    with pytest.raises(CheckpointError, match=r"a\.bin has 2 bytes, the manifest says 5"):
        verify(folder)
    (folder / "a.bin").unlink()
    with pytest.raises(CheckpointError, match=r"a\.bin is missing"):
        verify(folder)


def test_results_csv_formats_rows() -> None:
    text = results_csv([{"epoch": 1.0, "train/loss": 0.5, "lr": float("nan")}])
    assert text.splitlines()[1] == "1,0.5,,,,,"


def _published_checkpoint(tmp_path: Path, completed: int = 2) -> Path:
    run = tmp_path / "attempt-1" / "run"
    keeper = CheckpointKeeper(run, _state())
    return Path(_publish_epochs(keeper, run, completed)[-1])


def test_restore_copies_and_verifies_into_this_attempt(tmp_path: Path) -> None:
    checkpoint = _published_checkpoint(tmp_path)
    target = tmp_path / "attempt-2" / "run" / "checkpoints"

    restored = restore_checkpoint(
        ResumeSource.parse(checkpoint.as_uri()), target, epochs=4, storage=_no_storage
    )

    assert restored.path == target / checkpoint.name
    assert restored.completed_epochs == 2
    assert restored.metrics["val/accuracy"] == pytest.approx(0.7)
    verify(restored.path)
    assert not list((tmp_path / "attempt-2" / "run" / ".staging").iterdir())


def test_restore_in_place_when_the_output_dir_is_reused(tmp_path: Path) -> None:
    checkpoint = _published_checkpoint(tmp_path)
    restored = restore_checkpoint(
        ResumeSource.parse(str(checkpoint)), checkpoint.parent, epochs=3, storage=_no_storage
    )
    assert restored.path == checkpoint


def _no_storage() -> S3Storage:
    raise AssertionError("no storage for a local checkpoint")


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("no marker", "is incomplete: it has no COMPLETE marker"),
        ("a file", "is not a checkpoint folder"),
        ("complete", "already holds 2 of 2 epochs: nothing left to resume"),
    ],
)
def test_restore_refuses_unusable_local_checkpoints(
    tmp_path: Path, problem: str, message: str
) -> None:
    checkpoint = _published_checkpoint(tmp_path)
    epochs = 4
    if problem == "no marker":
        (checkpoint / MARKER).unlink()
    elif problem == "a file":
        checkpoint = checkpoint / "model.safetensors"
    else:
        epochs = 2
    with pytest.raises(ResumeError) as info:
        restore_checkpoint(
            ResumeSource.parse(str(checkpoint)),
            tmp_path / "attempt-2" / "run" / "checkpoints",
            epochs=epochs,
            storage=_no_storage,
        )
    assert str(info.value) == f"checkpoint {checkpoint} (TRAINYARD_RESUME_FROM) {message}"
    assert not (tmp_path / "attempt-2" / "run" / "checkpoints").exists()


def test_restore_from_s3_needs_the_marker(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = s3.bucket(f"b-{uuid.uuid4().hex[:12]}")
    checkpoint = _published_checkpoint(tmp_path)
    storage = S3Storage(s3.client(), attempts=2, wait_max_s=0.05)
    location = S3Location.parse(f"s3://{bucket}/jobs/j/attempt-1")
    # Half a publish: files there, marker not yet.
    s3.upload_folder(checkpoint, bucket, "jobs/j/attempt-1/run/checkpoints/half")
    s3.client().delete_object(Bucket=bucket, Key="jobs/j/attempt-1/run/checkpoints/half/COMPLETE")
    half = f"s3://{bucket}/jobs/j/attempt-1/run/checkpoints/half"
    with pytest.raises(ResumeError, match="not found \\(no COMPLETE marker under it\\)"):
        restore_checkpoint(
            ResumeSource.parse(half), tmp_path / "a2", epochs=4, storage=lambda: storage
        )

    uri = storage.upload_folder_atomic(
        checkpoint,
        location,
        "run/checkpoints/checkpoint-4",
        MARKER,
        (checkpoint / MARKER).read_bytes(),
    )
    restored = restore_checkpoint(
        ResumeSource.parse(uri), tmp_path / "a2", epochs=4, storage=lambda: storage
    )
    assert restored.path == tmp_path / "a2" / "checkpoint-4"
    assert restored.source == uri
    verify(restored.path)


def test_compatibility_checks_classes_and_schedule(tmp_path: Path) -> None:
    checkpoint = _published_checkpoint(tmp_path)
    restored = restore_checkpoint(
        ResumeSource.parse(str(checkpoint)), checkpoint.parent, epochs=4, storage=_no_storage
    )
    check_compatible(restored, ["blue", "red"], (16, 8, 1, 1))
    with pytest.raises(ResumeError, match="was trained on the classes"):
        check_compatible(restored, ["blue", "green"], (16, 8, 1, 1))
    with pytest.raises(ResumeError, match="processes 1 → 2"):
        check_compatible(restored, ["blue", "red"], (16, 8, 2, 1))
