"""The run's files and the artifacts ``done`` names.

Run layout (``<output>/run/``)
------------------------------
* ``checkpoints/checkpoint-<step>/`` — the Trainer's checkpoint of each epoch, published
  atomically (written under ``.staging/`` first, then renamed; trainer/checkpoints.py); the
  newest two are kept. Its path (or ``s3://`` URI) is ``checkpoint_saved``'s ``data.path`` and
  what ``TRAINYARD_RESUME_FROM`` points at.
* ``model/`` — the final model (``save_pretrained``: config, weights, tokenizer or image
  processor config), loadable with ``AutoModelFor…/AutoTokenizer/AutoImageProcessor
  .from_pretrained``.
* ``results.csv`` — one row per epoch: epoch, train/loss, val/loss, val/accuracy, val/f1, lr,
  train/samples_per_s.
"""

from __future__ import annotations

from pathlib import Path

from trainer_kit.publishing import RunPublisher

from trainer.checkpoints import MARKER, checkpoint_step


def newest_checkpoint(folder: Path) -> Path | None:
    checkpoints = folder / "checkpoints"
    if not checkpoints.is_dir():
        return None
    complete = [
        p
        for p in checkpoints.iterdir()
        if checkpoint_step(p) is not None and (p / MARKER).is_file()
    ]
    return max(complete, key=lambda p: checkpoint_step(p) or 0, default=None)


def collect_artifacts(
    folder: Path, last: str | None = None, publisher: RunPublisher | None = None
) -> dict[str, str]:
    """The run's files: absolute paths of those that exist, or with a publisher the ``s3://``
    URIs of those published so far (``last``: the URI of the newest checkpoint uploaded or
    resumed from)."""
    if publisher is None:
        artifacts: dict[str, str] = {}
        if (folder / "model").is_dir():
            artifacts["weights"] = str((folder / "model").resolve())
        newest = newest_checkpoint(folder)
        if newest is not None:
            artifacts["last"] = str(newest.resolve())
        if (folder / "results.csv").is_file():
            artifacts["results"] = str((folder / "results.csv").resolve())
        if folder.is_dir():
            artifacts["run_dir"] = str(folder.resolve())
        return artifacts
    run = publisher.relative(folder)
    uploaded = dict(publisher.uploaded)
    artifacts = {}
    if f"{run}/model" in uploaded:
        artifacts["weights"] = uploaded[f"{run}/model"]
    if last is not None:
        artifacts["last"] = last
    if f"{run}/results.csv" in uploaded:
        artifacts["results"] = uploaded[f"{run}/results.csv"]
    if any(relative.startswith(f"{run}/") for relative in uploaded):
        artifacts["run_dir"] = publisher.location.uri(run)
    return artifacts
