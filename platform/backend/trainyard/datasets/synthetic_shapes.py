"""A deterministic synthetic YOLO detection dataset: coloured circles, squares and triangles.

Used by `trainyard datasets make-shapes`, the demo and the tests: it needs no download, is
small enough to train on a CPU in seconds, and is the same bytes for the same seed.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

CLASS_NAMES = ("circle", "square", "triangle")
_BACKGROUNDS = ((24, 24, 32), (235, 235, 225), (40, 70, 60), (90, 60, 110))
_COLOURS = ((230, 60, 60), (60, 200, 90), (70, 110, 240), (250, 200, 40), (240, 240, 240))


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate. Defaults make a dataset a CPU trains on in a few seconds per epoch."""

    train_images: int = 32
    val_images: int = 8
    image_size: int = 128
    max_shapes: int = 3
    seed: int = 0


@dataclass(frozen=True)
class GeneratedDataset:
    root: Path
    data_yaml: Path
    train_images: int
    val_images: int
    boxes: int

    @property
    def uri(self) -> str:
        return self.root.resolve().as_uri()


def make_shapes(root: Path, spec: ShapesSpec | None = None) -> GeneratedDataset:
    """Write `images/{train,val}`, `labels/{train,val}` and `data.yaml` under `root`.

    A previous generation in `root` is replaced, so the result depends only on `spec`.
    """
    spec = spec or ShapesSpec()
    for folder in (root / "images", root / "labels"):
        shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(spec.seed)
    boxes = 0
    for split, count in (("train", spec.train_images), ("val", spec.val_images)):
        image_dir = root / "images" / split
        label_dir = root / "labels" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, labels = _draw_image(rng, spec)
            stem = f"{split}_{index:05d}"
            image.save(image_dir / f"{stem}.png")
            (label_dir / f"{stem}.txt").write_text("".join(f"{line}\n" for line in labels))
            boxes += len(labels)
    # No `path` key: Ultralytics then resolves splits relative to this file's folder, so the
    # dataset keeps working after it is moved or copied.
    data = {
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASS_NAMES)),
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return GeneratedDataset(root, data_yaml, spec.train_images, spec.val_images, boxes)


def _draw_image(rng: random.Random, spec: ShapesSpec) -> tuple[Image.Image, list[str]]:
    size = spec.image_size
    image = Image.new("RGB", (size, size), rng.choice(_BACKGROUNDS))
    draw = ImageDraw.Draw(image)
    labels: list[str] = []
    for _ in range(rng.randint(1, spec.max_shapes)):
        class_id = rng.randrange(len(CLASS_NAMES))
        side = rng.randint(size // 6, size // 3)
        x0 = rng.randint(0, size - side - 1)
        y0 = rng.randint(0, size - side - 1)
        box = (x0, y0, x0 + side, y0 + side)
        colour = rng.choice(_COLOURS)
        if CLASS_NAMES[class_id] == "circle":
            draw.ellipse(box, fill=colour)
        elif CLASS_NAMES[class_id] == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon(
                [(x0 + side / 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], fill=colour
            )
        cx, cy = (x0 + side / 2) / size, (y0 + side / 2) / size
        labels.append(f"{class_id} {cx:.6f} {cy:.6f} {side / size:.6f} {side / size:.6f}")
    return image, labels
