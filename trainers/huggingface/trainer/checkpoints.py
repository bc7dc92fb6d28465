"""Checkpoint folders, their manifest, and ``results.csv``.

A checkpoint is the transformers ``Trainer``'s own checkpoint folder (``checkpoint-<step>/``:
``model.safetensors``, ``config.json``, the tokenizer or image-processor files, ``optimizer.pt``,
``scheduler.pt``, ``scaler.pt`` with AMP, ``rng_state*.pth``, ``trainer_state.json``) plus two
files the trainer adds:

* ``trainyard_state.json`` — completed epochs, the per-epoch results rows, the classes, the
  best ``val/accuracy`` so far and what the step count per epoch depends on (training samples,
  per-device batch, processes, gradient accumulation), so a resumed attempt can check it is
  continuing the same schedule;
* ``COMPLETE`` — the manifest (name, size and SHA-256 of every other file), written last. A
  folder without it, or whose files do not match it, is not a checkpoint.

`CheckpointKeeper` turns each folder the Trainer saves (into ``run/.staging/``) into a published
checkpoint: state and manifest written, the folder renamed into ``run/checkpoints/`` atomically,
uploaded under ``TRAINYARD_OUTPUT_URI`` when set (files under a temporary prefix, copied into
place, ``COMPLETE`` last), ``results.csv`` rewritten, and older checkpoints than the newest
`KEEP` removed (locally and in storage).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer_kit.atomic_save import publish_folder, write_text_atomically
from trainer_kit.publishing import RunPublisher

log = logging.getLogger("trainyard.trainer.checkpoints")

MARKER = "COMPLETE"
STATE_FILE = "trainyard_state.json"
KEEP = 2
CHECKPOINT_PREFIX = "checkpoint-"
RESULT_COLUMNS = (
    "epoch",
    "train/loss",
    "val/loss",
    "val/accuracy",
    "val/f1",
    "lr",
    "train/samples_per_s",
)


class CheckpointError(Exception):
    """A checkpoint folder is incomplete or damaged."""


@dataclass
class CheckpointState:
    """What the trainer stores in ``trainyard_state.json`` beside the Trainer's own state."""

    completed_epochs: int
    epochs: int
    task: str
    classes: list[str]
    train_samples: int
    per_device_batch: int
    world_size: int
    gradient_accumulation_steps: int
    rows: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None  # best val/accuracy so far
    best_epoch: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> CheckpointState:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})

    def schedule(self) -> tuple[int, int, int, int]:
        """What the number of optimizer steps per epoch depends on."""
        return (
            self.train_samples,
            self.per_device_batch,
            self.world_size,
            self.gradient_accumulation_steps,
        )

    def last_metrics(self) -> dict[str, float]:
        """The metrics of the last completed epoch (without ``epoch``)."""
        for row in reversed(self.rows):
            if int(row.get("epoch", -1)) == self.completed_epochs:
                return {k: v for k, v in row.items() if k != "epoch"}
        return {}


# -- manifest -----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(folder: Path) -> dict[str, Any]:
    files = {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != MARKER
    }
    return {"format": "trainyard-huggingface-checkpoint/1", "files": files}


def write_marker(folder: Path) -> bytes:
    """Write ``COMPLETE`` (the manifest of everything else in ``folder``); returns its bytes."""
    body = json.dumps(manifest(folder), indent=2).encode()
    (folder / MARKER).write_bytes(body)
    return body


def verify(folder: Path) -> None:
    """Raise `CheckpointError` unless ``folder`` holds exactly what its ``COMPLETE`` lists."""
    marker = folder / MARKER
    if not marker.is_file():
        raise CheckpointError("is incomplete: it has no COMPLETE marker")
    try:
        listed = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"has an unreadable COMPLETE marker ({exc})") from None
    for name, expected in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"is incomplete: {name} is missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(
                f"is damaged: {name} has {size} bytes, the manifest says {expected['size']}"
            )
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"is damaged: {name} does not match its SHA-256")


def read_state(folder: Path) -> CheckpointState:
    try:
        return CheckpointState.from_json((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"has no readable {STATE_FILE} ({exc})") from None


def checkpoint_step(path: Path) -> int | None:
    match = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", path.name)
    return int(match.group(1)) if match else None


# -- results.csv --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def results_csv(rows: Sequence[Mapping[str, float]]) -> str:
    """One line per epoch, the columns `RESULT_COLUMNS` (a metric missing that epoch: empty)."""
    lines = [",".join(RESULT_COLUMNS)]
    for row in rows:
        cells = [str(int(row["epoch"]))]
        cells += [_cell(row.get(column)) for column in RESULT_COLUMNS[1:]]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


# -- publishing ---------------------------------------------------------------------------------


class CheckpointKeeper:
    """Publishes the Trainer's checkpoints and keeps ``results.csv`` (leader process only)."""

    def __init__(
        self,
        run_dir: Path,
        state: CheckpointState,
        publisher: RunPublisher | None = None,
        keep: int = KEEP,
    ) -> None:
        self.run_dir = run_dir
        self.checkpoints_dir = run_dir / "checkpoints"
        self.results_path = run_dir / "results.csv"
        self.state = state
        self._uploads = CheckpointUploads(publisher, keep) if publisher is not None else None
        self._keep = keep
        self.last: str | None = None  # path or URI of the newest checkpoint

    def write_results(self) -> Path:
        return write_text_atomically(self.results_path, results_csv(self.state.rows))

    def record_epoch(self, completed: int, metrics: Mapping[str, float]) -> None:
        """Add (or replace) the row of epoch ``completed`` and update the best metric."""
        row = {"epoch": float(completed), **metrics}
        self.state.rows = [r for r in self.state.rows if int(r["epoch"]) != completed] + [row]
        self.state.rows.sort(key=lambda r: r["epoch"])
        self.state.completed_epochs = completed
        accuracy = metrics.get("val/accuracy")
        if accuracy is not None and (
            self.state.best_metric is None or accuracy > self.state.best_metric
        ):
            self.state.best_metric = accuracy
            self.state.best_epoch = completed

    def publish(self, staging: Path) -> str:
        """Finish the checkpoint folder ``staging`` written by the Trainer and publish it;
        returns its path (or ``s3://`` URI)."""
        (staging / STATE_FILE).write_text(self.state.to_json(), encoding="utf-8")
        write_marker(staging)
        target = publish_folder(staging, self.checkpoints_dir / staging.name)
        self.write_results()
        where = self._uploads.upload(target) if self._uploads is not None else str(target)
        self.last = where
        self._rotate(target)
        return where

    def _rotate(self, newest: Path) -> None:
        local = sorted(
            (p for p in self.checkpoints_dir.iterdir() if checkpoint_step(p) is not None),
            key=lambda p: checkpoint_step(p) or 0,
        )
        for old in local[: max(len(local) - self._keep, 0)]:
            if old != newest:
                log.info("removing old checkpoint %s", old)
                shutil.rmtree(old, ignore_errors=True)


class CheckpointUploads:
    """Uploads published checkpoint folders under ``TRAINYARD_OUTPUT_URI`` (``COMPLETE`` last)
    and keeps the newest `KEEP` there: the keeper's in one process, the launching process's in
    a distributed run (where rank 0 keeps the local folders)."""

    def __init__(self, publisher: RunPublisher, keep: int = KEEP) -> None:
        self._publisher = publisher
        self._keep = keep
        self._published: list[str] = []  # relative names of folders in storage, oldest first

    def upload(self, folder: Path) -> str:
        """Upload the checkpoint folder; returns its ``s3://`` URI."""
        uri = self._publisher.publish_folder(folder, MARKER, (folder / MARKER).read_bytes())
        self._published.append(self._publisher.relative(folder))
        while len(self._published) > self._keep:
            self._publisher.unpublish_folder(self._published.pop(0), MARKER)
        return uri
