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
published to object storage. `restore_checkpoint` prepares it inside *this* attempt's run folder:

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
import posixpath
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from trainer.atomic_save import replace_atomically, write_text_atomically
from trainer.callbacks import clean_metrics
from trainer.storage import S3Location, S3Storage, StorageError

log = logging.getLogger("trainyard.trainer.resume")

VARIABLE = "TRAINYARD_RESUME_FROM"
FORMAT = "trainyard-timm"
METRIC_COLUMNS = ("train/loss", "val/loss", "val/top1", "val/top5", "lr", "train/images_per_s")


class ResumeError(Exception):
    """The checkpoint to resume from cannot be used; fails the attempt."""


@dataclass(frozen=True)
class ResumeSource:
    """Where the checkpoint is: exactly one of ``path`` (local) and ``s3`` is set."""

    uri: str
    path: Path | None = None
    s3: S3Location | None = None

    @classmethod
    def parse(cls, value: str) -> ResumeSource:
        """An absolute path, ``file:///abs/path`` or ``s3://bucket/key``; raises ValueError."""
        parts = urlsplit(value)
        if parts.scheme == "s3":
            location = S3Location.parse(value)
            if not location.prefix:
                raise ValueError(f"s3 URI names no object: {value!r}")
            return cls(uri=value, s3=location)
        if parts.scheme == "file":
            if parts.netloc not in {"", "localhost"} or parts.query or parts.fragment:
                raise ValueError(f"not a local file:// URI: {value!r}")
            path = Path(unquote(parts.path))
        elif parts.scheme == "":
            path = Path(value)
        else:
            raise ValueError(f"unsupported scheme {parts.scheme!r}: {value!r}")
        if not path.is_absolute() or path.name in {"", ".", ".."}:
            raise ValueError(f"not an absolute file path: {value!r}")
        return cls(uri=value, path=path)

    def sibling(self, name: str) -> ResumeSource:
        """The file ``name`` in the same folder (prefix)."""
        if self.s3 is not None:
            key = posixpath.join(posixpath.dirname(self.s3.prefix), name)
            location = S3Location(self.s3.bucket, key)
            return ResumeSource(uri=location.uri(), s3=location)
        assert self.path is not None
        sibling = self.path.with_name(name)
        return ResumeSource(uri=str(sibling), path=sibling)


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

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        message = " ".join(str(exc).split())[:300]
        raise ResumeError(
            f"checkpoint {source} ({VARIABLE}) is unreadable: {type(exc).__name__}: {message}"
        ) from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ResumeError(f"checkpoint {source} ({VARIABLE}) is not a timm trainer checkpoint")
    if checkpoint.get("optimizer") is None or int(checkpoint.get("epoch", -1)) < 1:
        raise ResumeError(
            f"checkpoint {source} ({VARIABLE}) holds no training state to resume "
            "(weights only, such as best.pt)"
        )
    return checkpoint


def _fetch(source: ResumeSource, target: Path, storage: Callable[[], S3Storage]) -> None:
    """Copy or download ``source`` to ``target`` atomically; raises ResumeError or OSError."""
    if source.s3 is not None:
        try:
            storage().download_object(source.s3, target)
        except StorageError as exc:
            raise ResumeError(
                f"checkpoint {source.uri} ({VARIABLE}) not downloaded: {exc}"
            ) from exc
        return
    path = source.path
    assert path is not None
    if not path.is_file():
        raise ResumeError(f"checkpoint {source.uri} ({VARIABLE}) not found")
    if target.exists() and path.resolve() == target.resolve():
        return  # the platform reused the output dir: the checkpoint is already in place
    replace_atomically(target, lambda temporary: shutil.copyfile(path, temporary))


def _fetch_best(source: ResumeSource, target: Path, storage: Callable[[], S3Storage]) -> bool:
    """Bring ``best.pt`` from beside the checkpoint, if there is one."""
    best = source.sibling(target.name)
    if best.path is not None and not best.path.is_file():
        return False
    try:
        _fetch(best, target, storage)
    except (ResumeError, OSError) as exc:
        log.warning("%s not restored (%s): this attempt's best epoch makes best.pt", best.uri, exc)
        return False
    return True


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
    try:
        _fetch(source, last, storage)
    except OSError as exc:
        raise ResumeError(f"checkpoint {source.uri} ({VARIABLE}) not copied: {exc}") from exc
    checkpoint = load_checkpoint(last, source.uri)
    completed = int(checkpoint["epoch"])
    if completed >= epochs:
        raise ResumeError(
            f"checkpoint {source.uri} ({VARIABLE}) already holds {completed} of {epochs} "
            "epochs: nothing left to resume"
        )
    best_known = _fetch_best(source, weights / "best.pt", storage)
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
