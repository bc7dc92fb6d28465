"""Resuming from a checkpoint an earlier attempt of the same job saved (``TRAINYARD_RESUME_FROM``).

The platform hands the new attempt the ``data.path`` of the job's newest ``checkpoint_saved``
event: ``<old output dir>/run/weights/last.pt``, or its ``s3://`` URI when the run was published
to object storage (trainer_kit/resume.py). The new attempt has its own output dir (and perhaps
a new dataset mirror), so `restore_checkpoint` prepares Ultralytics' own resume
(``YOLO(last.pt).train(resume=last.pt)``, which restores weights, EMA, optimizer, AMP scaler,
LR schedule position, best fitness and the early-stopping state) inside *this* attempt's run
folder:

1. copy (or download) the checkpoint to ``<output dir>/run/weights/last.pt``, and ``best.pt``
   from beside it when there is one — otherwise a resumed run whose later epochs never beat the
   earlier best would end without a ``best.pt``; with none, the best fitness is forgotten so
   this attempt's best epoch becomes ``best.pt``;
2. rewrite the ``train_args`` stored in the copy with this attempt's arguments. Ultralytics'
   resume takes its arguments from the checkpoint and lets only a few be overridden (not
   ``epochs``, and ``save_dir`` would still name the old attempt's folder); the dataset path is
   overridden by the ``data`` argument of ``train()`` itself;
3. write ``results.csv`` from the rows stored in the checkpoint, so the new run folder holds the
   whole history and Ultralytics appends the next epochs to it, as its in-place resume does.
   The checkpoint's last row also becomes the first heartbeat's metrics: a trainer killed while
   announcing its checkpoint never sent that epoch's heartbeat.

Any problem — missing, unreadable, finished (optimizer stripped) or already complete — raises
`ResumeError`, whose message names the checkpoint; the attempt then ends in ``done(failed)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_kit.atomic_save import replace_atomically
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


@dataclass(frozen=True)
class RestoredCheckpoint:
    """The checkpoint, ready for ``YOLO(path).train(resume=path)``; ``metrics`` are those of
    its last epoch (as results.csv names them), for the first heartbeat."""

    path: Path
    completed_epochs: int
    source: str
    metrics: dict[str, float]


def _load(path: Path, source: str) -> dict[str, Any]:
    import torch  # after the caller has set up Ultralytics: the checkpoint pickles its classes

    checkpoint = read_checkpoint(
        path,
        source,
        lambda file: torch.load(file, map_location="cpu", weights_only=False),
        what="an Ultralytics checkpoint",
        recognise=lambda loaded: isinstance(loaded.get("train_args"), dict),
    )
    if checkpoint.get("optimizer") is None or int(checkpoint.get("epoch", -1)) < 0:
        raise ResumeError(
            f"checkpoint {source} ({VARIABLE}) holds no training state to resume "
            "(a finished run's stripped weights)"
        )
    return checkpoint


def _csv_value(value: Any) -> str:
    # Ultralytics writes every results.csv value with "%.6g"; the same text comes back out.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.6g}"
    return str(value)


def results_csv(train_results: Mapping[str, Any], completed_epochs: int) -> str | None:
    """``results.csv`` text of the rows stored in a checkpoint, up to ``completed_epochs``."""
    columns = [str(name) for name in train_results]
    values = [list(train_results[name]) for name in train_results]
    if not columns or columns[0] != "epoch" or len({len(v) for v in values}) != 1:
        return None
    lines = [",".join(columns)]
    for row in zip(*values, strict=True):
        if float(row[0]) <= completed_epochs:
            lines.append(",".join(_csv_value(value) for value in row))
    return "\n".join(lines) + "\n"


def epoch_row(train_results: Mapping[str, Any], epoch: int) -> dict[str, float]:
    """The metrics of ``epoch`` in the results stored in a checkpoint (``epoch``/``time`` left
    out): the killed attempt may have died before its heartbeat for that epoch went out."""
    rows = {str(name): list(values) for name, values in train_results.items()}
    epochs = rows.pop("epoch", [])
    rows.pop("time", None)
    for index, value in enumerate(epochs):
        if value == epoch:
            return clean_metrics({name: values[index] for name, values in rows.items()})
    return {}


def restore_checkpoint(
    source: ResumeSource,
    run_dir: Path,
    *,
    train_args: Mapping[str, Any],
    epochs: int,
    storage: Callable[[], S3Storage],
) -> RestoredCheckpoint:
    """Put the checkpoint into ``run_dir/weights/last.pt``, ready to resume this attempt with
    ``train_args`` (this attempt's Ultralytics arguments) for ``epochs`` epochs in total."""
    weights = run_dir / "weights"
    last = weights / "last.pt"
    fetch_checkpoint(source, last, storage)
    checkpoint = _load(last, source.uri)
    completed = int(checkpoint["epoch"]) + 1
    check_remaining(source.uri, completed, epochs)
    if not fetch_sibling(source, weights / "best.pt", storage):
        checkpoint["best_fitness"] = None
    checkpoint["train_args"] = {**checkpoint["train_args"], **train_args, "epochs": epochs}

    import torch

    replace_atomically(last, lambda temporary: torch.save(checkpoint, temporary))
    train_results = checkpoint.get("train_results") or {}
    rows = results_csv(train_results, completed)
    if rows is not None:
        csv_path = run_dir / "results.csv"
        replace_atomically(csv_path, lambda temporary: temporary.write_text(rows, encoding="utf-8"))
    log.info("resuming from %s after epoch %d of %d", source.uri, completed, epochs)
    return RestoredCheckpoint(
        path=last,
        completed_epochs=completed,
        source=source.uri,
        metrics=epoch_row(train_results, completed),
    )
