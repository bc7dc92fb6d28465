"""What a training run is given (`TrainJob`) and what it hands back after each epoch
(`EpochReport`); both cross process boundaries in DDP (trainer/distributed.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from trainer.settings import Hyperparameters


class TrainJob(BaseModel):
    """What one training run needs; JSON-serialisable for DDP workers (no secrets)."""

    model_config = ConfigDict(frozen=True)

    model: str
    dataset: Path
    run_dir: Path
    epochs: int
    imgsz: int
    batch: int
    cuda: bool
    hyperparameters: Hyperparameters
    resume: Path | None = None  # the restored checkpoint (this attempt's run/weights/last.pt)
    best_known: bool = True  # False: the best.pt of the resumed run was not restored

    @property
    def last_path(self) -> Path:
        return self.run_dir / "weights" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "weights" / "best.pt"

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.csv"


@dataclass(frozen=True)
class EpochReport:
    """An epoch that ended and whose checkpoint is saved; ``best`` is set when it is the best
    so far (best.pt was rewritten)."""

    epoch: int
    epochs: int
    metrics: dict[str, float]
    last: Path
    best: Path | None


EpochSink = Callable[[EpochReport], None]
