"""The trainers the conformance suite holds to the contract: adding a trainer means adding its
case here (a tiny model, a tiny dataset of its format, and one that breaks it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard.datasets.synthetic_classes import ClassesSpec, make_classes
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.datasets.synthetic_text import TextSpec, make_text

REPO = Path(__file__).resolve().parents[4]


def shapes(root: Path) -> Path:
    return make_shapes(root, ShapesSpec(train_images=8, val_images=4, image_size=64)).root


def broken_yolo(root: Path) -> Path:
    """A data.yaml whose image folders do not exist."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/missing-train\nval: images/missing-val\nnames:\n  0: thing\n",
        encoding="utf-8",
    )
    return root


def shape_classes(root: Path) -> Path:
    spec = ClassesSpec(train_per_class=4, val_per_class=2, image_size=32)
    return make_classes(root, spec).root


def broken_imagefolder(root: Path) -> Path:
    """Training images but no val split."""
    make_classes(root, ClassesSpec(train_per_class=2, val_per_class=1, image_size=32))
    for image in (root / "val").rglob("*.png"):
        image.unlink()
    return root


def topics(root: Path) -> Path:
    return make_text(root, TextSpec(train_per_label=8, val_per_label=2, words=6)).root


def broken_text(root: Path) -> Path:
    """A train split with a line that is not JSON."""
    make_text(root, TextSpec(train_per_label=2, val_per_label=1, words=4))
    with (root / "train.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    return root


# A tiny transformer: trains in a second or two on two CPU cores.
TINY_TRANSFORMER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@dataclass(frozen=True)
class TrainerCase:
    """One trainer (and task) as the suite runs it."""

    id: str
    framework: str
    model: str
    task: str
    make_dataset: Callable[[Path], Path]
    make_broken_dataset: Callable[[Path], Path]
    imgsz: int
    batch: int
    # A per-epoch metric every epoch reports (checked on the MLflow run, once per epoch).
    epoch_metric: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def executable(self) -> Path:
        return REPO / "trainers" / self.framework / ".venv" / "bin" / "trainyard-trainer"

    def job_body(self, dataset_uri: str, epochs: int) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "model": self.model,
            "dataset": dataset_uri,
            "task": self.task,
            "epochs": epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "gpus": 0,
            "hyperparameters": self.hyperparameters,
        }


TRAINERS = [
    TrainerCase(
        id="ultralytics",
        framework="ultralytics",
        model="yolo11n.yaml",
        task="detect",
        make_dataset=shapes,
        make_broken_dataset=broken_yolo,
        imgsz=64,
        batch=4,
        epoch_metric="train/box_loss",
        hyperparameters={"workers": 0},
    ),
    TrainerCase(
        id="timm",
        framework="timm",
        model="test_resnet",
        task="classify",
        make_dataset=shape_classes,
        make_broken_dataset=broken_imagefolder,
        imgsz=32,
        batch=4,
        epoch_metric="train/loss",
        hyperparameters={"workers": 0},
    ),
    TrainerCase(
        id="huggingface-image",
        framework="huggingface",
        model="vit",
        task="image-classification",
        make_dataset=shape_classes,
        make_broken_dataset=broken_imagefolder,
        imgsz=32,
        batch=4,
        epoch_metric="train/loss",
        hyperparameters={
            "model_config": TINY_TRANSFORMER | {"patch_size": 8},
            "learning_rate": 1e-3,
        },
    ),
    TrainerCase(
        id="huggingface-text",
        framework="huggingface",
        model="bert",
        task="text-classification",
        make_dataset=topics,
        make_broken_dataset=broken_text,
        imgsz=224,
        batch=4,
        epoch_metric="train/loss",
        hyperparameters={
            "model_config": TINY_TRANSFORMER,
            "learning_rate": 1e-3,
            "max_length": 16,
        },
    ),
]
