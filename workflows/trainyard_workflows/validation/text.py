"""Checks of a text-classification dataset (what the Hugging Face trainer's
`text-classification` task reads).

Layout: `train.jsonl` and `val.jsonl` (one JSON object per line) or `train.csv` and `val.csv`
(a header row), each record with a `text` (non-empty string) and a `label` (a class name).
The classes are the labels of train; a val label train never shows cannot be scored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator

from trainyard_workflows.validation.files import DatasetFiles
from trainyard_workflows.validation.report import Findings, SplitCounts, ValidationReport

SPLITS = ("train", "val")
EXTENSIONS = ("jsonl", "csv")


def validate_text_files(files: DatasetFiles) -> ValidationReport:
    """Validate the text-classification dataset at the root of `files`."""
    findings = Findings("text")
    missing = files.missing_reason()
    if missing is not None:
        findings.errors.add(missing)
        return findings.report()
    labels: dict[str, set[str]] = {}
    for split in SPLITS:
        found = _check_split(files, findings, split)
        if found is not None:
            labels[split] = found
    if len(labels) == len(SPLITS):
        unknown = sorted(labels["val"] - labels["train"])
        if unknown:
            findings.errors.add(f"val has labels train never shows: {', '.join(unknown[:10])}")
        if len(labels["train"]) < 2:
            findings.errors.add("train has fewer than 2 labels: nothing to classify")
    return findings.report()


def _split_file(files: DatasetFiles, split: str) -> str | None:
    found = [f"{split}.{ext}" for ext in EXTENSIONS if files.is_file(f"{split}.{ext}")]
    return found[0] if found else None


def _records(name: str, text: str) -> Iterator[tuple[int, object]]:
    """(line number, record) for each record; a record that does not parse is its error."""
    if name.endswith(".jsonl"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, ValueError(f"not JSON ({exc.msg})")
        return
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
        yield 1, ValueError(f"the header must name 'text' and 'label', got {reader.fieldnames}")
        return
    for row in reader:
        yield reader.line_num, row


def _check_split(files: DatasetFiles, findings: Findings, split: str) -> set[str] | None:
    """The labels of one split, after checking its records; None if the split is absent."""
    name = _split_file(files, split)
    if name is None:
        findings.errors.add(f"{split}: {split}.jsonl or {split}.csv is missing")
        return None
    try:
        text = files.read_text(name)
    except UnicodeDecodeError:
        findings.errors.add(f"{split}: {name} is not UTF-8 text")
        return None
    counts = SplitCounts()
    findings.counts[split] = counts
    labels: set[str] = set()
    for number, record in _records(name, text):
        where = f"{name}:{number}"
        if isinstance(record, ValueError):
            counts.bad_label_files += 1
            findings.errors.add(f"{split}: {where}: {record}")
            continue
        problem = _record_problem(record)
        if problem is not None:
            counts.bad_label_files += 1
            findings.errors.add(f"{split}: {where}: {problem}")
            continue
        assert isinstance(record, dict)
        label, sample = str(record["label"]), str(record["text"])
        counts.samples += 1
        counts.labelled += 1
        labels.add(label)
        findings.saw_image(split, where, hashlib.sha256(sample.encode()).hexdigest())
        if split == "train":
            findings.histogram[label] = findings.histogram.get(label, 0) + 1
    if counts.samples == 0:
        findings.errors.add(f"{split}: {name} holds no samples")
        return None
    return labels


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return "not an object with 'text' and 'label'"
    text, label = record.get("text"), record.get("label")
    if not isinstance(text, str) or not text.strip():
        return "'text' is missing or empty"
    if isinstance(label, bool) or not isinstance(label, str | int) or str(label).strip() == "":
        return "'label' is missing or not a class name"
    return None
