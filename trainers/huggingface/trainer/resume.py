"""Resuming from a checkpoint folder an earlier attempt of the same job saved
(``TRAINYARD_RESUME_FROM``).

The platform hands the new attempt the ``data.path`` of the job's newest ``checkpoint_saved``
event: ``<old output dir>/run/checkpoints/checkpoint-<step>`` (a folder), or its ``s3://`` prefix
URI when the run was published to object storage (trainer_kit/resume.py). `restore_checkpoint`
brings it into *this* attempt's ``run/checkpoints/`` — copied, or downloaded once its ``COMPLETE``
marker is there — checks every file against the manifest (trainer/checkpoints.py), reads
``trainyard_state.json`` and only then renames the copy into place. The run then builds the model,
tokenizer or image processor from that folder and calls
``Trainer.train(resume_from_checkpoint=folder)``, which restores the weights, optimizer, LR
scheduler, AMP scaler, RNG states, global step and best metric, and continues with the next epoch.
The results rows stored in the checkpoint become the new run's ``results.csv`` (the earlier epochs,
then the new ones), and the last row the first heartbeat's metrics.

Any problem — missing, incomplete, damaged, or already complete — raises `ResumeError`, whose
message names the checkpoint and ``TRAINYARD_RESUME_FROM``; the attempt then ends in
``done(failed)``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainer_kit.atomic_save import publish_folder, staging_folder
from trainer_kit.resume import (
    VARIABLE,
    ResumeError,
    ResumeSource,
    check_announced,
    check_remaining,
)
from trainer_kit.storage import S3Location, S3Storage, StorageError

from trainer.checkpoints import (
    MARKER,
    CheckpointError,
    CheckpointState,
    read_state,
    verify,
)

log = logging.getLogger("trainyard.trainer.resume")


@dataclass(frozen=True)
class RestoredCheckpoint:
    """The checkpoint folder in this attempt's run folder, ready for
    ``Trainer.train(resume_from_checkpoint=path)``."""

    path: Path
    source: str
    state: CheckpointState

    @property
    def completed_epochs(self) -> int:
        return self.state.completed_epochs

    @property
    def metrics(self) -> dict[str, float]:
        return self.state.last_metrics()


def _fail(source: ResumeSource, problem: str) -> ResumeError:
    return ResumeError(f"checkpoint {source.uri} ({VARIABLE}) {problem}")


def _fetch(source: ResumeSource, staging: Path, storage: Callable[[], S3Storage]) -> None:
    if source.s3 is not None:
        try:
            marker = storage().read_object(
                S3Location(source.s3.bucket, f"{source.s3.prefix}/{MARKER}")
            )
            if marker is None:
                raise _fail(source, f"not found (no {MARKER} marker under it)")
            storage().download_prefix(source.s3, staging)
        except StorageError as exc:
            raise _fail(source, f"not downloaded: {exc}") from exc
        return
    path = source.path
    assert path is not None
    if not path.exists():
        raise _fail(source, "not found")
    if not path.is_dir():
        raise _fail(source, "is not a checkpoint folder")
    try:
        shutil.copytree(path, staging, dirs_exist_ok=True)
    except OSError as exc:
        raise _fail(source, f"not copied: {exc}") from exc


def restore_checkpoint(
    source: ResumeSource,
    checkpoints_dir: Path,
    *,
    epochs: int,
    storage: Callable[[], S3Storage],
) -> RestoredCheckpoint:
    """Copy (or download) the checkpoint into ``checkpoints_dir``, verified, for a run of
    ``epochs`` epochs in total."""
    target = checkpoints_dir / source.name
    if source.path is not None and target.resolve() == source.path.resolve():
        # The platform reused the output dir: the checkpoint is already in place.
        check_announced(source, target)
        try:
            verify(target)
            state = read_state(target)
        except CheckpointError as exc:
            raise _fail(source, str(exc)) from None
    else:
        staging = staging_folder(checkpoints_dir.parent / ".staging", source.name)
        try:
            _fetch(source, staging, storage)
            check_announced(source, staging)
            try:
                verify(staging)
                state = read_state(staging)
            except CheckpointError as exc:
                raise _fail(source, str(exc)) from None
            check_remaining(source.uri, state.completed_epochs, epochs)
            publish_folder(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    check_remaining(source.uri, state.completed_epochs, epochs)
    log.info("resuming from %s after epoch %d of %d", source.uri, state.completed_epochs, epochs)
    return RestoredCheckpoint(path=target, source=source.uri, state=state)


def check_compatible(
    restored: RestoredCheckpoint, classes: list[str], schedule: tuple[int, int, int, int]
) -> None:
    """Raise `ResumeError` when the checkpoint was trained on other classes or with another
    number of optimizer steps per epoch (its step count would map to the wrong epoch)."""
    state = restored.state
    if state.classes != classes:
        raise ResumeError(
            f"checkpoint {restored.source} ({VARIABLE}) was trained on the classes "
            f"{state.classes}, the dataset has {classes}"
        )
    if state.schedule() != schedule:
        names = ("training samples", "per-device batch", "processes", "gradient accumulation")
        differences = ", ".join(
            f"{name} {old} → {new}"
            for name, old, new in zip(names, state.schedule(), schedule, strict=True)
            if old != new
        )
        raise ResumeError(
            f"checkpoint {restored.source} ({VARIABLE}) was saved with another number of steps "
            f"per epoch ({differences})"
        )
