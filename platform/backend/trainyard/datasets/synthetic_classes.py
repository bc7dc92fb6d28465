"""A deterministic synthetic image-classification dataset (ImageFolder): one shape per image.

`train/<class>/<image>.png` and `val/<class>/<image>.png` with the classes circle, square and
triangle — the layout timm and the Hugging Face trainer's `image-classification` read. Used by
`trainyard datasets make-classification` and the tests: no download, trains on a CPU in
seconds, the same bytes for the same seed.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from trainyard.datasets.synthetic_shapes import CLASS_NAMES

_BACKGROUNDS = ((24, 24, 32), (235, 235, 225), (40, 70, 60), (90, 60, 110))
_COLOURS = ((230, 60, 60), (60, 200, 90), (70, 110, 240), (250, 200, 40))


@dataclass(frozen=True)
class ClassesSpec:
    """Images per class and split; the defaults train on a CPU in about a second per epoch."""

    train_per_class: int = 12
    val_per_class: int = 4
    image_size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class GeneratedClasses:
    root: Path
    classes: tuple[str, ...]
    train_images: int
    val_images: int

    @property
    def uri(self) -> str:
        return self.root.resolve().as_uri()


def make_classes(root: Path, spec: ClassesSpec | None = None) -> GeneratedClasses:
    """Write `train/<class>/` and `val/<class>/` under `root`, replacing an earlier generation."""
    spec = spec or ClassesSpec()
    rng = random.Random(spec.seed)
    counts = {"train": spec.train_per_class, "val": spec.val_per_class}
    for split, per_class in counts.items():
        shutil.rmtree(root / split, ignore_errors=True)
        for name in CLASS_NAMES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                _draw(rng, name, spec.image_size).save(folder / f"{split}_{index:05d}.png")
    return GeneratedClasses(
        root,
        CLASS_NAMES,
        spec.train_per_class * len(CLASS_NAMES),
        spec.val_per_class * len(CLASS_NAMES),
    )


def _draw(rng: random.Random, shape: str, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), rng.choice(_BACKGROUNDS))
    draw = ImageDraw.Draw(image)
    side = rng.randint(size // 3, size * 3 // 4)
    x0 = rng.randint(0, size - side - 1)
    y0 = rng.randint(0, size - side - 1)
    colour = rng.choice(_COLOURS)
    if shape == "circle":
        draw.ellipse((x0, y0, x0 + side, y0 + side), fill=colour)
    elif shape == "square":
        draw.rectangle((x0, y0, x0 + side, y0 + side), fill=colour)
    else:
        draw.polygon([(x0 + side / 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], fill=colour)
    return image
