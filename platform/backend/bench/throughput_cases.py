"""The trainers the throughput bench runs (bench/trainer_throughput.py), each with a tiny model
and a synthetic dataset made on the spot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard.datasets.synthetic_classes import ClassesSpec, make_classes
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.datasets.synthetic_text import TextSpec, make_text

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@dataclass(frozen=True)
class Case:
    name: str
    framework: str
    model: str
    task: str
    imgsz: int
    batch: int
    make_dataset: Callable[[Path], tuple[Path, int]]  # (folder, train samples)
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def _shapes(root: Path) -> tuple[Path, int]:
    made = make_shapes(root, ShapesSpec(train_images=192, val_images=8, image_size=96))
    return made.root, made.train_images


def _classes(per_class: int) -> Callable[[Path], tuple[Path, int]]:
    def make(root: Path) -> tuple[Path, int]:
        spec = ClassesSpec(train_per_class=per_class, val_per_class=8, image_size=64)
        made = make_classes(root, spec)
        return made.root, made.train_images

    return make


def _topics(root: Path) -> tuple[Path, int]:
    made = make_text(root, TextSpec(train_per_label=1500, val_per_label=8, words=12))
    return made.root, made.train_samples


# Datasets sized so an epoch takes about 5 s on a 2-core CPU: long enough that a callback and a
# checkpoint weigh against some training, short enough for 48 epochs per trainer.
CASES = [
    Case("ultralytics yolo11n", "ultralytics", "yolo11n.yaml", "detect", 96, 8, _shapes,
         {"workers": 0}),
    Case("timm resnet10t", "timm", "resnet10t", "classify", 64, 16, _classes(256),
         {"workers": 0}),
    Case("huggingface vit (tiny)", "huggingface", "vit", "image-classification", 64, 16,
         _classes(1000), {"model_config": TINY | {"patch_size": 8}}),
    Case("huggingface bert (tiny)", "huggingface", "bert", "text-classification", 64, 16,
         _topics, {"model_config": TINY, "max_length": 32}),
]  # fmt: skip
