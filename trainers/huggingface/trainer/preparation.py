"""What the reporting process readies before training: the restored checkpoint, the first
heartbeat, the dataset and model folders; and the state the checkpoints carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainer_kit.control import StopFlag
from trainer_kit.output_dir import run_dir, trainer_dir
from trainer_kit.sources import local_folder
from trainer_kit.storage import LazyStorage

from trainer.checkpoints import CheckpointState
from trainer.dataset import LoadedData
from trainer.distributed import DistContext
from trainer.progress import ProgressReporter
from trainer.resume import RestoredCheckpoint, check_compatible, restore_checkpoint
from trainer.settings import TrainerSettings


@dataclass(frozen=True)
class Prepared:
    """What the reporting process made ready before training (in a distributed run, the
    launching process, which hands it to the ranks)."""

    dataset: Path
    restored: RestoredCheckpoint | None
    model_folder: Path | None
    model_type: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what the launching process hands the ranks (trainer/handover.py)."""
        restored = self.restored
        return {
            "dataset": str(self.dataset),
            "model_folder": str(self.model_folder) if self.model_folder else None,
            "model_type": self.model_type,
            "restored": None
            if restored is None
            else {
                "path": str(restored.path),
                "source": restored.source,
                "state": restored.state.to_json(),
            },
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Prepared:
        restored = body.get("restored")
        return cls(
            dataset=Path(body["dataset"]),
            restored=None
            if restored is None
            else RestoredCheckpoint(
                path=Path(restored["path"]),
                source=restored["source"],
                state=CheckpointState.from_json(restored["state"]),
            ),
            model_folder=Path(body["model_folder"]) if body.get("model_folder") else None,
            model_type=body.get("model_type"),
        )


def is_model_folder(model: str) -> bool:
    """A path or URI (a saved model folder), not a model type name such as ``vit``."""
    return "/" in model or ":" in model or model.startswith((".", "~"))


def prepare(
    settings: TrainerSettings,
    reporter: ProgressReporter,
    stop: StopFlag,
    storage: LazyStorage,
) -> Prepared:
    """Restore the checkpoint (if resuming), send the first heartbeat, fetch dataset and model."""
    private = trainer_dir(settings.output_dir)
    restored = None
    source = settings.resume_source()
    if source is not None:
        restored = restore_checkpoint(
            source,
            run_dir(settings.output_dir) / "checkpoints",
            epochs=settings.epochs,
            storage=storage,
        )
        reporter.checkpoint_restored(restored.source, restored.completed_epochs)
    stop.check()
    reporter.start(
        epoch=0 if restored is None else restored.completed_epochs,
        metrics=None if restored is None else restored.metrics,
    )
    dataset = local_folder(settings.dataset_uri, private / "dataset", storage, stop)
    stop.check()
    if is_model_folder(settings.model):
        folder = local_folder(settings.model, private / "model", storage, stop, what="model")
        return Prepared(dataset, restored, folder, None)
    return Prepared(dataset, restored, None, settings.model.lower())


def initial_state(
    settings: TrainerSettings,
    data: LoadedData,
    restored: RestoredCheckpoint | None,
    dist: DistContext,
) -> CheckpointState:
    """The state the checkpoints carry: the restored one (checked against this attempt's
    dataset and schedule) or a fresh one."""
    schedule = (
        len(data.train),
        settings.batch,
        dist.world_size,
        settings.hyperparameters.gradient_accumulation_steps,
    )
    if restored is not None:
        check_compatible(restored, data.classes, schedule)
        return replace(restored.state, epochs=settings.epochs)
    return CheckpointState(
        completed_epochs=0,
        epochs=settings.epochs,
        task=data.task,
        classes=data.classes,
        train_samples=schedule[0],
        per_device_batch=schedule[1],
        world_size=schedule[2],
        gradient_accumulation_steps=schedule[3],
    )
