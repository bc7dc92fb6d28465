"""Checkpoint files that are always whole: write next to the target, then rename over it.

Ultralytics' ``BaseTrainer.save_model`` writes ``weights/last.pt`` (and ``best.pt``,
``epoch<N>.pt``) in place with ``Path.write_bytes``. A SIGKILL (OOM killer, lost node, the
platform's grace period running out) in the middle of that write leaves a truncated ``last.pt``
— the very file the next attempt resumes from — and the previous good one is gone. So the
trainer redirects each save into a staging folder inside ``weights/`` (same filesystem), fsyncs
the files and ``os.replace``-s them over the real ones: at any instant ``last.pt`` is either the
previous checkpoint or the new one, never a torn mix (the fsync and single-file helpers are
trainer_kit/atomic_save.py).

The redirect swaps ``trainer.wdir``/``last``/``best`` for the duration of the original
``save_model`` call rather than copying its body, so it keeps working whatever that method
writes. It is installed by `make_saves_atomic`, an ``on_pretrain_routine_start`` callback: that
runs in the process that saves (the trainer itself, or DDP's rank 0, which unpickles the
callback by reference), after Ultralytics has set those paths and before the first epoch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer_kit.atomic_save import fsync_dir, fsync_file

_INSTALLED = "_trainyard_atomic_saves"


def _publish_order(path: Path, last: str) -> tuple[bool, str]:
    # best.pt (and epoch<N>.pt) before last.pt: a kill between two renames then leaves a last.pt
    # that is at most as new as best.pt, so a resume never loses the best epoch's weights.
    return (path.name == last, path.name)


def save_atomically(trainer: Any, save: Callable[[], bool]) -> bool:
    """Call Ultralytics' ``save`` with the trainer's checkpoint paths pointing into a staging
    folder, then move every file it wrote over the real one (best/epoch files first)."""
    wdir, last, best = Path(trainer.wdir), Path(trainer.last), Path(trainer.best)
    wdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=wdir))
    try:
        trainer.wdir, trainer.last, trainer.best = staging, staging / last.name, staging / best.name
        try:
            saved = save()
        finally:
            trainer.wdir, trainer.last, trainer.best = wdir, last, best
        for path in sorted(staging.iterdir(), key=lambda p: _publish_order(p, last.name)):
            fsync_file(path)
            os.replace(path, wdir / path.name)
        fsync_dir(wdir)
        return saved
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def make_saves_atomic(trainer: Any) -> None:
    """Ultralytics callback (``on_pretrain_routine_start``): route ``trainer.save_model``
    through `save_atomically`. Idempotent."""
    if getattr(trainer, _INSTALLED, False):
        return
    original: Callable[[], bool] = trainer.save_model

    def save_model() -> bool:
        return save_atomically(trainer, original)

    trainer.save_model = save_model
    setattr(trainer, _INSTALLED, True)
