"""What `trainyard datasets upload/show` need besides HTTP: zipping a folder on the fly and
printing a validation report."""

from __future__ import annotations

import enum
import json
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

console = Console()


class DatasetFormat(enum.StrEnum):
    yolo = "yolo"
    imagefolder = "imagefolder"
    text = "text"


@contextmanager
def archive_for_upload(path: Path) -> Iterator[IO[bytes]]:
    """A .zip as is, or a folder zipped into a temp file (on disk: datasets are big)."""
    if path.is_file():
        with path.open("rb") as handle:
            yield handle
        return
    with tempfile.TemporaryFile(suffix=".zip") as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(path.rglob("*")):
                # Symlinks would be refused by the server; store what they point to instead.
                if file.is_file():
                    archive.write(file, file.relative_to(path).as_posix())
        handle.seek(0)
        yield handle


def show_dataset_report(dataset: dict[str, Any], output: str) -> None:
    """The dataset and its report, as a table (or the raw JSON with `--output json`)."""
    if output == "json":
        console.print_json(json.dumps(dataset))
        return
    style = {"valid": "green", "invalid": "red"}.get(dataset.get("status", ""), "yellow")
    console.print(
        f"dataset [bold]{dataset['name']}[/] ({dataset['format']}) "
        f"[{style}]{dataset.get('status', 'pending')}[/]  {dataset['id']}"
    )
    console.print(f"uri: {dataset['uri']}", soft_wrap=True)
    report = dataset.get("report") or {}
    counts: dict[str, dict[str, int]] = report.get("counts") or {}
    if counts:
        table = Table("split", "images", "labelled", "no label", "corrupt", "bad labels")
        for split, c in counts.items():
            table.add_row(
                split,
                str(c.get("images", 0)),
                str(c.get("labelled", 0)),
                str(c.get("missing_labels", 0)),
                str(c.get("corrupt_images", 0)),
                str(c.get("bad_label_files", 0)),
            )
        console.print(table)
    histogram: dict[str, int] = report.get("class_histogram") or {}
    if histogram:
        table = Table("class", "count")
        for name, count in histogram.items():
            table.add_row(name, str(count))
        console.print(table)
    for error in report.get("errors") or []:
        console.print(f"[red]error:[/] {error}", soft_wrap=True)
    for warning in report.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    for pair in report.get("train_val_overlap") or []:
        console.print(f"[yellow]overlap:[/] {pair}", soft_wrap=True)
