"""Where the trainer's dataset comes from — a local ``file://`` folder or an ``s3://`` prefix
downloaded first — and what it must look like: an image folder.

::

    <dataset>/train/<class>/<image>      classes = the sorted folder names of train/
    <dataset>/val/<class>/<image>        the same class folders

Images are files with one of `IMAGE_EXTENSIONS` (any case); hidden files and folders are left
out. A missing split, a split without images or val/ classes that differ from train/'s fail the
attempt before any training (``FileNotFoundError``/``ValueError`` naming the folder).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from trainer.control import StopFlag
from trainer.settings import TrainerSettings
from trainer.storage import S3Location, S3Storage, is_s3_uri

log = logging.getLogger("trainyard.trainer.dataset")

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
SPLITS = ("train", "val")


class UnsupportedDatasetURIError(ValueError):
    """The dataset URI is neither a local ``file://`` folder nor an ``s3://`` prefix."""


def dataset_folder(uri: str) -> Path:
    """``file:///abs/path`` (or a bare absolute path) → the local folder."""
    parts = urlsplit(uri)
    if parts.scheme not in {"file", ""}:
        raise UnsupportedDatasetURIError(
            f"unsupported dataset URI scheme {parts.scheme!r} in {uri!r} "
            "(file:// and s3:// are supported)"
        )
    if parts.netloc not in {"", "localhost"}:
        raise UnsupportedDatasetURIError(
            f"unsupported dataset URI host {parts.netloc!r} in {uri!r}"
        )
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise UnsupportedDatasetURIError(f"dataset URI {uri!r} is not an absolute file:// path")
    return path


class LazyStorage:
    """Builds the S3 client on first use: runs without object storage never import boto3."""

    def __init__(self) -> None:
        self._storage: S3Storage | None = None

    def __call__(self) -> S3Storage:
        if self._storage is None:
            self._storage = S3Storage()
        return self._storage


def local_dataset(
    settings: TrainerSettings,
    private: Path,
    storage: LazyStorage | None = None,
    stop: StopFlag | None = None,
) -> Path:
    """The dataset's local folder: the ``file://`` one, or ``<private>/dataset`` holding a
    mirror of the ``s3://`` prefix."""
    if not is_s3_uri(settings.dataset_uri):
        return dataset_folder(settings.dataset_uri)
    try:
        location = S3Location.parse(settings.dataset_uri)
    except ValueError as exc:
        raise UnsupportedDatasetURIError(str(exc)) from None
    store = (storage or LazyStorage())()
    check = stop.check if stop is not None else (lambda: None)
    return store.download_prefix(location, private / "dataset", check=check)


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
