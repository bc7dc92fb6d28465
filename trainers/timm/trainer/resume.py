"""Checkpoints, and resuming from one an earlier attempt of the same job saved
(``TRAINYARD_RESUME_FROM``).

Checkpoint format
-----------------
``run/weights/last.pt`` (after every epoch) is a ``torch.save`` of a plain dict — tensors,
numbers, strings, lists and dicts only, so it loads with ``torch.load(weights_only=True)``:

* ``format`` (``"trainyard-timm"``), ``kind`` (``"checkpoint"``), ``architecture`` (the timm
  model name), ``classes`` (class folder names, in label order), ``imgsz``;
* ``model`` (state dict), ``optimizer``, ``scheduler`` (timm scheduler state, or None),
  ``scaler`` (AMP GradScaler state);
* ``epoch`` (completed epochs), ``epochs`` (the total the run was started for), ``best``
  (``{"epoch", "val/top1", "val/loss"}`` of the best epoch so far, or None), ``results`` (one
  dict per completed epoch: ``epoch`` and the metrics — what ``results.csv`` holds) and
  ``hyperparameters``.

``run/weights/best.pt`` (rewritten whenever an epoch is the best so far: highest ``val/top1``,
ties broken by lower ``val/loss``) holds the weights only: ``kind`` ``"weights"``,
``architecture``, ``classes``, ``imgsz``, ``model``, ``epoch`` and that epoch's ``metrics``.
Both can be given as ``TRAINYARD_MODEL`` or ``pretrained_path`` to start another job from.

Resume
------
The platform hands the new attempt the ``data.path`` of the job's newest ``checkpoint_saved``
event: ``<old output dir>/run/weights/last.pt``, or its ``s3://`` URI when the run was
published to object storage (trainer_kit/resume.py). `restore_checkpoint` prepares it inside
*this* attempt's run folder:

1. copy (or download) it to ``<output dir>/run/weights/last.pt``, and ``best.pt`` from beside it
   when there is one — otherwise a resumed run whose later epochs never beat the earlier best
   would end without a ``best.pt``; with none, the best so far is forgotten so this attempt's
   best epoch becomes ``best.pt``;
2. write ``results.csv`` from the rows stored in the checkpoint, so the new run folder holds the
   whole history and the next epochs are appended to it. The checkpoint's last row also becomes
   the first heartbeat's metrics: a trainer killed while announcing its checkpoint never sent
   that epoch's heartbeat.

Training then restores model, optimizer, LR schedule, AMP scaler, completed epochs and the best
epoch from it (trainer/engine.py) and goes on with the next epoch. Any problem — missing,
unreadable, not this trainer's, holding no optimizer state (``best.pt``) or already complete —
raises `ResumeError`, whose message names the checkpoint; the attempt then ends in
``done(failed)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_kit.atomic_save import write_text_atomically
from trainer_kit.callbacks import clean_metrics
from trainer_kit.resume import (
    VARIABLE,
    ResumeError,
    ResumeSource,
    check_remaining,
    fetch_checkpoint,
    fetch_sibling,
    read_checkpoint,
)
from trainer_kit.storage import S3Storage

log = logging.getLogger("trainyard.trainer.resume")

FORMAT = "trainyard-timm"
METRIC_COLUMNS = ("train/loss", "val/loss", "val/top1", "val/top5", "lr", "train/images_per_s")


@dataclass(frozen=True)
class RestoredCheckpoint:
    """The checkpoint, copied into this attempt's run folder; ``metrics`` are those of its last
    epoch, for the first heartbeat; ``best_known`` is False when no best.pt came with it."""

    path: Path
    completed_epochs: int
    source: str
    metrics: dict[str, float]
    best_known: bool


# -- results.csv --------------------------------------------------------------------------------


def _csv_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def results_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``results.csv``: ``epoch``, then `METRIC_COLUMNS`, one row per completed epoch."""
    columns = ("epoch", *METRIC_COLUMNS)
    lines = [",".join(columns)]
    lines.extend(",".join(_csv_value(row.get(name, "")) for name in columns) for row in rows)
    return "\n".join(lines) + "\n"


def write_results(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    return write_text_atomically(path, results_csv(rows))


def row_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of one results row (``epoch`` left out)."""
    return clean_metrics({key: value for key, value in row.items() if key != "epoch"})


# -- loading ------------------------------------------------------------------------------------


def load_checkpoint(path: Path, source: str) -> dict[str, Any]:
    """A training checkpoint of this trainer (with optimizer state); raises ResumeError."""
    import torch

    checkpoint = read_checkpoint(
        path,
        source,
        lambda file: torch.load(file, map_location="cpu", weights_only=True),
        what="a timm trainer checkpoint",
        recognise=lambda loaded: loaded.get("format") == FORMAT,
    )
    if checkpoint.get("optimizer") is None or int(checkpoint.get("epoch", -1)) < 1:
        raise ResumeError(
            f"checkpoint {source} ({VARIABLE}) holds no training state to resume "
            "(weights only, such as best.pt)"
        )
    return checkpoint


def restore_checkpoint(
    source: ResumeSource,
    run_dir: Path,
    *,
    epochs: int,
    storage: Callable[[], S3Storage],
) -> RestoredCheckpoint:
    """Put the checkpoint into ``run_dir/weights/last.pt`` (and its rows into
    ``run_dir/results.csv``), ready to resume for ``epochs`` epochs in total."""
    weights = run_dir / "weights"
    last = weights / "last.pt"
    fetch_checkpoint(source, last, storage)
    checkpoint = load_checkpoint(last, source.uri)
    completed = int(checkpoint["epoch"])
    check_remaining(source.uri, completed, epochs)
    best_known = fetch_sibling(source, weights / "best.pt", storage)
    rows = [row for row in checkpoint.get("results") or [] if int(row["epoch"]) <= completed]
    write_results(run_dir / "results.csv", rows)
    log.info("resuming from %s after epoch %d of %d", source.uri, completed, epochs)
    return RestoredCheckpoint(
        path=last,
        completed_epochs=completed,
        source=source.uri,
        metrics=row_metrics(rows[-1]) if rows else {},
        best_known=best_known,
    )
