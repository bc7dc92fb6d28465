"""What is in the dataset. (Where it comes from — a local ``file://`` folder or an ``s3://``
prefix downloaded first — is trainer_kit/sources.py.)

Two layouts, one per task:

* ``image-classification`` — an ImageFolder: ``train/<class>/<image>`` and
  ``val/<class>/<image>`` (``.jpg .jpeg .png .bmp .gif .webp .tif .tiff``). The classes are the
  sorted folder names under ``train/``.
* ``text-classification`` — ``train.jsonl`` + ``val.jsonl`` (one JSON object per line) or
  ``train.csv`` + ``val.csv`` (with a header), each record with the fields ``text`` and
  ``label`` (a class name; numbers are read as their text). The classes are the sorted set of
  training labels.

Without ``TRAINYARD_TASK`` the task is detected: ``train.jsonl``/``train.csv`` → text,
``train/`` folder → image. A validation record whose class is not a training class, an empty
split or a malformed record is an error naming the file (and line); a missing file or folder is a
``FileNotFoundError``. Nothing here imports torch or transformers, so a broken dataset fails the
attempt within a second or two.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from trainer.settings import IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TEXT_FORMATS = ("jsonl", "csv")


class DatasetError(ValueError):
    """The dataset's content is unusable (a malformed record, an unknown class, an empty split)."""


@dataclass(frozen=True)
class LoadedData:
    """A dataset's records: ``(image path or text, class index)`` per split."""

    task: str
    classes: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]


def _text_file(folder: Path, split: str) -> Path | None:
    for fmt in TEXT_FORMATS:
        path = folder / f"{split}.{fmt}"
        if path.is_file():
            return path
    return None


def detect_task(folder: Path) -> str:
    if _text_file(folder, "train") is not None:
        return TEXT_CLASSIFICATION
    if (folder / "train").is_dir():
        return IMAGE_CLASSIFICATION
    raise FileNotFoundError(
        f"dataset {folder} has neither train.jsonl/train.csv (text-classification) nor a "
        "train/ folder (image-classification)"
    )


def load_data(folder: Path, task: str | None) -> LoadedData:
    """Read the dataset in ``folder`` for ``task`` (None: detect it)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    task = task or detect_task(folder)
    if task == TEXT_CLASSIFICATION:
        return _load_text(folder)
    return _load_images(folder)


# -- images -------------------------------------------------------------------------------------


def _class_folders(split: Path) -> list[Path]:
    return sorted(p for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _load_images(folder: Path) -> LoadedData:
    splits: dict[str, Path] = {}
    for split in ("train", "val"):
        path = folder / split
        if not path.is_dir():
            raise FileNotFoundError(f"dataset has no {split}/ folder: {path}")
        splits[split] = path
    classes = [p.name for p in _class_folders(splits["train"])]
    if not classes:
        raise DatasetError(f"{splits['train']} has no class folders (train/<class>/<image>)")
    index = {name: i for i, name in enumerate(classes)}
    records: dict[str, list[tuple[str, int]]] = {}
    for split, path in splits.items():
        rows: list[tuple[str, int]] = []
        for class_dir in _class_folders(path):
            if class_dir.name not in index:
                raise DatasetError(
                    f"{class_dir}: class {class_dir.name!r} is not a class of the training set "
                    f"(classes: {', '.join(classes)})"
                )
            rows += [(str(image), index[class_dir.name]) for image in _images(class_dir)]
        if not rows:
            raise DatasetError(f"{path} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        records[split] = rows
    return LoadedData(IMAGE_CLASSIFICATION, classes, records["train"], records["val"])


# -- text ---------------------------------------------------------------------------------------


def _record(path: Path, line: int, raw: object) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise DatasetError(f"{path} line {line}: not a JSON object")
    text, label = raw.get("text"), raw.get("label")
    if not isinstance(text, str):
        raise DatasetError(f"{path} line {line}: field 'text' must be a string")
    if isinstance(label, bool) or not isinstance(label, str | int | float) or label == "":
        raise DatasetError(f"{path} line {line}: field 'label' must be a class name")
    return text, str(label)


def _read_text_records(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path} line {line_no}: invalid JSON ({exc.msg})") from None
                records.append(_record(path, line_no, raw))
        else:
            reader = csv.DictReader(handle)
            missing = {"text", "label"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"{path}: header lacks {', '.join(sorted(missing))}")
            for row in reader:
                records.append(_record(path, reader.line_num, dict(row)))
    if not records:
        raise DatasetError(f"{path} has no records")
    return records


def _load_text(folder: Path) -> LoadedData:
    train_path = _text_file(folder, "train")
    if train_path is None:
        raise FileNotFoundError(f"dataset has no train.jsonl or train.csv: {folder}")
    val_path = folder / f"val{train_path.suffix}"
    if not val_path.is_file():
        raise FileNotFoundError(f"dataset has no {val_path.name} (beside {train_path.name})")
    train = _read_text_records(train_path)
    classes = sorted({label for _, label in train})
    index = {name: i for i, name in enumerate(classes)}
    val: list[tuple[str, int]] = []
    for number, (text, label) in enumerate(_read_text_records(val_path), start=1):
        if label not in index:
            raise DatasetError(
                f"{val_path} record {number}: label {label!r} is not a class of the training "
                f"set (classes: {', '.join(classes)})"
            )
        val.append((text, index[label]))
    return LoadedData(
        TEXT_CLASSIFICATION, classes, [(text, index[label]) for text, label in train], val
    )
