"""Checks of an ImageFolder classification dataset (what Ultralytics `classify` trains from).

Layout: `train/<class>/<image>` and `val/<class>/<image>`; the class folders of both splits
must be the same and each must hold at least one readable image.
"""

from __future__ import annotations

from trainyard_workflows.validation.files import DatasetFiles, image_digest, is_image
from trainyard_workflows.validation.report import Findings, SplitCounts, ValidationReport

SPLITS = ("train", "val")


def validate_imagefolder_files(files: DatasetFiles) -> ValidationReport:
    """Validate the classification dataset at the root of `files`."""
    findings = Findings("imagefolder")
    missing = files.missing_reason()
    if missing is not None:
        findings.errors.add(missing)
        return findings.report()
    classes: dict[str, set[str]] = {}
    for split in SPLITS:
        found = _check_split(files, findings, split)
        if found is not None:
            classes[split] = found
    if len(classes) == len(SPLITS) and classes["train"] != classes["val"]:
        only_train = sorted(classes["train"] - classes["val"])
        only_val = sorted(classes["val"] - classes["train"])
        parts = []
        if only_train:
            parts.append(f"only in train: {', '.join(only_train)}")
        if only_val:
            parts.append(f"only in val: {', '.join(only_val)}")
        findings.errors.add(f"train and val have different classes ({'; '.join(parts)})")
    return findings.report()


def _check_split(files: DatasetFiles, findings: Findings, split: str) -> set[str] | None:
    """The class names of one split, after checking its images; None if the split is absent."""
    keys = files.files_under(split)
    if not keys:
        findings.errors.add(f"{split}: folder {split}/ is missing or empty")
        return None
    counts = SplitCounts()
    findings.counts[split] = counts
    per_class: dict[str, int] = {}
    stray = 0
    for key in keys:
        parts = key.split("/")
        if len(parts) < 3:
            # A file directly in train/: not in any class folder, so the trainer ignores it.
            stray += 1
            continue
        name = parts[1]
        per_class.setdefault(name, 0)
        if not is_image(key):
            stray += 1
            continue
        counts.images += 1
        digest = image_digest(files.read(key))
        if digest is None:
            counts.corrupt_images += 1
            findings.corrupt.add(key)
            findings.errors.add(f"{split}: {key} is not a readable image")
            continue
        findings.saw_image(split, key, digest)
        counts.labelled += 1
        per_class[name] += 1
        if split == "train":
            findings.histogram[name] = findings.histogram.get(name, 0) + 1
    if stray:
        findings.warnings.add(
            f"{split}: {stray} file(s) are not images in a class folder and are ignored"
        )
    if not per_class:
        findings.errors.add(f"{split}: no class folders (expected {split}/<class>/<image>)")
        return None
    for name, count in sorted(per_class.items()):
        if count == 0:
            findings.errors.add(f"{split}: class {name!r} has no readable images")
    return set(per_class)
