"""What the trainer's dataset must look like: an image folder. (Where it comes from — a local
``file://`` folder or an ``s3://`` prefix downloaded first — is trainer_kit/sources.py.)

::

    <dataset>/train/<class>/<image>      classes = the sorted folder names of train/
    <dataset>/val/<class>/<image>        the same class folders

Images are files with one of `IMAGE_EXTENSIONS` (any case); hidden files and folders are left
out. A missing split, a split without images or val/ classes that differ from train/'s fail the
attempt before any training (``FileNotFoundError``/``ValueError`` naming the folder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
SPLITS = ("train", "val")
Sample = tuple[str, int]


@dataclass(frozen=True)
class ImageFolder:
    """The scanned dataset: class names (label order) and (path, label) samples per split."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]


def _visible_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[str]:
    return sorted(
        str(p)
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def scan_dataset(root: Path) -> ImageFolder:
    """Index ``root``; raises FileNotFoundError/ValueError naming what is wrong."""
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    for split in SPLITS:
        if not (root / split).is_dir():
            raise FileNotFoundError(f"dataset has no {split}/ folder: {root / split}")
    classes = _visible_dirs(root / "train")
    if not classes:
        raise FileNotFoundError(f"dataset has no class folders in {root / 'train'}")
    val_classes = _visible_dirs(root / "val")
    if val_classes != classes:
        missing = sorted(set(classes) - set(val_classes))
        extra = sorted(set(val_classes) - set(classes))
        raise ValueError(
            f"val/ classes differ from train/ classes in {root}: "
            f"missing in val/ {missing}, not in train/ {extra}"
        )
    samples: dict[str, tuple[Sample, ...]] = {}
    for split in SPLITS:
        found = tuple(
            (path, label)
            for label, name in enumerate(classes)
            for path in _images(root / split / name)
        )
        if not found:
            raise FileNotFoundError(
                f"dataset has no images in {root / split} "
                f"(expected {split}/<class>/<image> with {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        samples[split] = found
    return ImageFolder(root, tuple(classes), samples["train"], samples["val"])


class ImageList:
    """A map-style dataset over (path, label) samples: RGB PIL image → ``transform``."""

    def __init__(self, samples: Sequence[Sample], transform: Callable[[Any], Any]) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        return self.transform(rgb), label
