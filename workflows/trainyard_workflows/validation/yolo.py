"""Checks of a YOLO detection dataset (the layout Ultralytics trains from).

Layout: a folder holding `data.yaml` with `names` (list, or mapping id -> name), `train` and
`val` (an image folder, a `.txt` list of images, or a list of either), optionally `path` (the
root those are relative to; absent: the folder of data.yaml; relative: relative to that
folder) and `nc`. Each image `…/images/…/x.jpg` has its labels in `…/labels/…/x.txt`, one
`class x_center y_center width height` line per box, coordinates normalised to [0, 1].

Files are read through the object store, so the same checks run on a local folder and on S3.
Everything is resolved inside the dataset: a `path` or split that leaves it is an error, since
a stored dataset must carry all its files.
"""

from __future__ import annotations

import math
import os
import posixpath
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from trainyard_workflows.storage.local import LocalObjectStore
from trainyard_workflows.validation.files import DatasetFiles, image_digest, is_image
from trainyard_workflows.validation.report import Findings, SplitCounts, ValidationReport

SPLITS = ("train", "val")


class _Checker(Findings):
    def __init__(self, files: DatasetFiles) -> None:
        super().__init__("yolo")
        self.files = files
        self.names: list[str] = []

    def inside(self, base: str, raw: str) -> str | None:
        """`raw` (from data.yaml) as a key of the dataset, or None when it leaves it."""
        path = PurePosixPath(raw)
        if path.is_absolute():
            local = self.files.store.local_path(self.files.prefix)
            if local is None:
                return None
            try:
                inner = path.relative_to(local.as_posix()).as_posix()
            except ValueError:
                return None
            return "" if inner == "." else inner
        joined = posixpath.normpath(posixpath.join(base, raw))
        if joined == ".":
            return ""
        if joined.startswith("../") or joined == "..":
            return None
        return joined


def validate_yolo_detection(root: Path) -> ValidationReport:
    """Validate the detection dataset whose `data.yaml` is in the local folder `root`."""
    return validate_yolo_files(DatasetFiles(LocalObjectStore(root), "", str(root)))


def validate_yolo_files(files: DatasetFiles) -> ValidationReport:
    """Validate the detection dataset whose `data.yaml` is at the root of `files`."""
    checker = _Checker(files)
    config = _load_data_yaml(checker)
    if config is None:
        return checker.report()
    names = _class_names(checker, config)
    base = _dataset_base(checker, config)
    if base is not None:
        for split in SPLITS:
            images = _split_images(checker, base, config, split)
            if images is not None:
                _check_split(checker, split, images, len(names) if names is not None else None)
    return checker.report()


def _load_data_yaml(checker: _Checker) -> dict[str, Any] | None:
    missing = checker.files.missing_reason()
    if missing is not None:
        checker.errors.add(missing)
        return None
    if not checker.files.is_file("data.yaml"):
        checker.errors.add(f"data.yaml not found in {checker.files.display}")
        return None
    try:
        config = yaml.safe_load(checker.files.read_text("data.yaml"))
    except (yaml.YAMLError, ValueError) as error:
        checker.errors.add(f"data.yaml does not parse: {error}")
        return None
    if not isinstance(config, dict):
        checker.errors.add("data.yaml must be a mapping with names, train and val")
        return None
    return config


def _class_names(checker: _Checker, config: dict[str, Any]) -> list[str] | None:
    raw = config.get("names")
    names: list[str] | None = None
    if raw is None:
        checker.errors.add("data.yaml has no 'names' (the class names)")
    elif isinstance(raw, list) and raw:
        names = [str(name) for name in raw]
    elif isinstance(raw, dict) and raw:
        if all(isinstance(key, int) for key in raw) and sorted(raw) == list(range(len(raw))):
            names = [str(raw[key]) for key in range(len(raw))]
        else:
            checker.errors.add("data.yaml 'names' keys must be the class ids 0..n-1")
    else:
        checker.errors.add("data.yaml 'names' must be a non-empty list or mapping id -> name")
    nc = config.get("nc")
    if names is not None and nc is not None and nc != len(names):
        checker.errors.add(f"data.yaml 'nc' is {nc} but 'names' lists {len(names)} classes")
    checker.names = names or []
    return names


def _dataset_base(checker: _Checker, config: dict[str, Any]) -> str | None:
    raw = config.get("path")
    if not raw:
        return ""
    base = checker.inside("", str(raw))
    if base is None:
        checker.errors.add(
            f"data.yaml 'path' {raw} is outside the dataset; use a path relative to data.yaml"
        )
    return base


def _split_images(
    checker: _Checker, base: str, config: dict[str, Any], split: str
) -> list[str] | None:
    raw = config.get(split)
    if raw is None:
        checker.errors.add(f"data.yaml has no '{split}' entry")
        return None
    entries = raw if isinstance(raw, list) else [raw]
    images: list[str] = []
    for entry in entries:
        source = checker.inside(base, str(entry))
        if source is None:
            checker.errors.add(f"{split}: {entry} is outside the dataset")
            return None
        if checker.files.is_file(source) and source.endswith(".txt"):
            images.extend(_listed_images(checker, source, split))
        elif source and checker.files.is_dir(source):
            images.extend(key for key in checker.files.files_under(source) if is_image(key))
        else:
            checker.errors.add(f"{split}: image folder {source or entry} does not exist")
            return None
    if not images:
        shown = ", ".join(str(entry) for entry in entries)
        checker.errors.add(f"{split}: no images in {shown}")
        return None
    return images


def _listed_images(checker: _Checker, listing: str, split: str) -> list[str]:
    images: list[str] = []
    try:
        text = checker.files.read_text(listing)
    except ValueError as error:
        checker.errors.add(f"{split}: {listing} cannot be read: {error}")
        return images
    parent = posixpath.dirname(listing)
    for line in text.splitlines():
        if not line.strip():
            continue
        image = checker.inside(parent, line.strip())
        if image is not None and checker.files.is_file(image):
            images.append(image)
        else:
            checker.errors.add(f"{split}: {listing} lists missing {line.strip()}")
    return images


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last `/images/` of the path becomes `/labels/`, suffix `.txt`."""
    images_dir, labels_dir = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    text = str(image)
    if images_dir in text:
        head, tail = text.rsplit(images_dir, 1)
        text = head + labels_dir + tail
    return Path(text).with_suffix(".txt")


def label_key_for(image: str) -> str:
    """`label_path_for` on a dataset key (relative, `/`-separated)."""
    text = "/" + image
    if "/images/" in text:
        head, tail = text.rsplit("/images/", 1)
        text = head + "/labels/" + tail
    return posixpath.splitext(text)[0][1:] + ".txt"


def _check_split(checker: _Checker, split: str, images: list[str], nc: int | None) -> None:
    counts = SplitCounts(images=len(images))
    checker.counts[split] = counts
    for image in images:
        digest = image_digest(checker.files.read(image))
        if digest is None:
            counts.corrupt_images += 1
            checker.corrupt.add(image)
            checker.errors.add(f"{split}: {image} is not a readable image")
        else:
            checker.saw_image(split, image, digest)
        label = label_key_for(image)
        if not checker.files.is_file(label):
            counts.missing_labels += 1
            checker.without_labels.add(image)
            continue
        counts.labelled += 1
        problem = _check_label_file(checker, label, nc, counts)
        if problem is not None:
            counts.bad_label_files += 1
            checker.errors.add(f"{split}: {label} {problem}")
    if counts.missing_labels:
        checker.warnings.add(
            f"{split}: {counts.missing_labels} of {counts.images} images have no label file "
            "(they train as background)"
        )


def _check_label_file(
    checker: _Checker, label: str, nc: int | None, counts: SplitCounts
) -> str | None:
    """Counts the boxes of a label file; returns its first problem, if any."""
    try:
        text = checker.files.read_text(label)
    except ValueError as error:
        return f"cannot be read: {error}"
    classes: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            return f"line {number}: expected 5 numbers (class x y w h), got {len(fields)}"
        try:
            values = [float(field) for field in fields]
        except ValueError:
            return f"line {number}: not a number in {line.strip()!r}"
        if not all(math.isfinite(value) for value in values):
            return f"line {number}: not a finite number in {line.strip()!r}"
        class_value, *coordinates = values
        if not class_value.is_integer():
            return f"line {number}: class id {fields[0]} is not an integer"
        class_id = int(class_value)
        if class_id < 0 or (nc is not None and class_id >= nc):
            counts.out_of_range_labels += 1
            checker.out_of_range.add(f"{label}:{number}")
            valid = f"0..{nc - 1}" if nc is not None else ">= 0"
            return f"line {number}: class id {class_id} out of range {valid}"
        outside = [value for value in coordinates if not 0.0 <= value <= 1.0]
        if outside:
            return f"line {number}: coordinates must be normalised to [0, 1], got {outside[0]:g}"
        classes.append(class_id)
    counts.boxes += len(classes)
    for class_id in classes:
        name = checker.names[class_id] if class_id < len(checker.names) else str(class_id)
        checker.histogram[name] = checker.histogram.get(name, 0) + 1
    return None
