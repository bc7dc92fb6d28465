"""The result of a dataset validation (returned by the activity, posted as an event, stored
with the dataset). Fields only ever get added, with defaults, so recorded workflow histories
keep deserialising."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

# A broken dataset can have thousands of bad files; the first few are enough to act on and
# keep the event (and the workflow history) small.
MAX_MESSAGES = 20


@dataclass
class SplitCounts:
    """What was found in one split (`train`, `val`)."""

    images: int = 0
    labelled: int = 0
    missing_labels: int = 0
    boxes: int = 0
    corrupt_images: int = 0
    bad_label_files: int = 0
    out_of_range_labels: int = 0
    # Text datasets: records with a text and a label (their bad lines count as bad_label_files).
    samples: int = 0


@dataclass
class ValidationReport:
    """`ok` is True when there are no errors; warnings never block training.

    The lists of files (`images_without_labels`, …) keep the first MAX_MESSAGES paths; the
    counts in `counts` are complete.
    """

    ok: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, SplitCounts] = field(default_factory=dict)
    class_histogram: dict[str, int] = field(default_factory=dict)
    format: str = ""
    images_without_labels: list[str] = field(default_factory=list)
    corrupt_images: list[str] = field(default_factory=list)
    out_of_range_labels: list[str] = field(default_factory=list)
    # Identical image content in train and val ("train/a.png = val/b.png"): val scores lie.
    train_val_overlap: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the job's timeline."""
        text = "dataset valid" if self.ok else "dataset invalid"
        sizes = ", ".join(
            f"{split} {c.samples} samples" if c.samples else f"{split} {c.images} images"
            for split, c in self.counts.items()
        )
        if sizes:
            text += f": {sizes}"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s)"
        return text


class MessageList:
    """Collects messages, keeping the first MAX_MESSAGES and counting the rest."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.dropped = 0

    def add(self, message: str) -> None:
        if len(self.kept) < MAX_MESSAGES:
            self.kept.append(message)
        else:
            self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.kept)

    def as_list(self) -> list[str]:
        if self.dropped:
            return [*self.kept, f"... and {self.dropped} more"]
        return list(self.kept)


class Findings:
    """What a checker collects while it walks a dataset; `report()` freezes it."""

    def __init__(self, format_name: str) -> None:
        self.format = format_name
        self.errors = MessageList()
        self.warnings = MessageList()
        self.counts: dict[str, SplitCounts] = {}
        self.histogram: dict[str, int] = {}
        self.without_labels = MessageList()
        self.corrupt = MessageList()
        self.out_of_range = MessageList()
        # content hash -> split -> first file with that content
        self._digests: defaultdict[str, dict[str, str]] = defaultdict(dict)

    def saw_image(self, split: str, name: str, digest: str) -> None:
        self._digests[digest].setdefault(split, name)

    def check_overlap(self, first: str = "train", second: str = "val") -> list[str]:
        pairs = [
            f"{splits[first]} = {splits[second]}"
            for splits in self._digests.values()
            if first in splits and second in splits
        ]
        if pairs:
            items = "sample(s)" if self.format == "text" else "image(s)"
            self.warnings.add(
                f"{len(pairs)} {items} in {second} have identical content in {first} "
                "(validation scores will be optimistic)"
            )
        return sorted(pairs)[:MAX_MESSAGES]

    def report(self) -> ValidationReport:
        overlap = self.check_overlap()
        return ValidationReport(
            ok=not self.errors,
            errors=self.errors.as_list(),
            warnings=self.warnings.as_list(),
            counts=self.counts,
            class_histogram=self.histogram,
            format=self.format,
            images_without_labels=self.without_labels.kept,
            corrupt_images=self.corrupt.kept,
            out_of_range_labels=self.out_of_range.kept,
            train_val_overlap=overlap,
        )
