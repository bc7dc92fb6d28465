"""Entry point of dataset validation: picks the checks for a dataset's location and format."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from trainyard_workflows.storage import (
    ObjectStore,
    StorageError,
    StorageSettings,
    StorageUriError,
    object_store_for_uri,
    parse_storage_uri,
)
from trainyard_workflows.validation.files import DatasetFiles
from trainyard_workflows.validation.imagefolder import validate_imagefolder_files
from trainyard_workflows.validation.report import ValidationReport
from trainyard_workflows.validation.text import validate_text_files
from trainyard_workflows.validation.yolo import validate_yolo_files

DatasetFormat = Literal["yolo", "imagefolder", "text"]

# The dataset layout each training task reads.
FORMAT_OF_TASK: dict[str, DatasetFormat] = {
    "detect": "yolo",
    "classify": "imagefolder",
    "image-classification": "imagefolder",
    "text-classification": "text",
}


def local_path(dataset_uri: str) -> Path | None:
    """The folder of a `file:///abs/path` URI; None for any other kind of URI."""
    parsed = urlparse(dataset_uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def validate_location(
    store: ObjectStore, prefix: str, dataset_format: DatasetFormat, display: str
) -> ValidationReport:
    """Validate the dataset below `prefix` of `store`. Blocking (reads every image).

    Storage failures (unreachable, refused) propagate as StorageError: they say nothing about
    the dataset, so they must not be reported as if the dataset were invalid.
    """
    files = DatasetFiles(store, prefix, display)
    if dataset_format == "imagefolder":
        return validate_imagefolder_files(files)
    if dataset_format == "text":
        return validate_text_files(files)
    return validate_yolo_files(files)


def validate_dataset(
    dataset_uri: str, task: str, storage: StorageSettings | None = None
) -> ValidationReport:
    """Validate the dataset a job will train on. Blocking (reads every image): run in a thread.

    s3:// URIs must lie in the bucket of `storage` (default: read from the environment);
    file:// URIs may name any local folder.
    """
    dataset_format = FORMAT_OF_TASK.get(task)
    if dataset_format is None:
        # Segmentation and pose layouts differ; their checks do not exist yet, so the
        # trainer's own loading is the check. Say so rather than pass silently.
        return ValidationReport(
            ok=True, warnings=[f"no dataset checks for task '{task}' yet; dataset not checked"]
        )
    try:
        parsed = parse_storage_uri(dataset_uri)
        store, prefix = object_store_for_uri(storage or StorageSettings(), parsed)
    except StorageUriError as exc:
        return ValidationReport(ok=False, errors=[f"dataset URI: {exc}"], format=dataset_format)
    display = parsed.path if parsed.scheme == "file" else parsed.uri
    try:
        return validate_location(store, prefix, dataset_format, display)
    except StorageError as exc:
        return ValidationReport(ok=False, errors=[f"dataset storage: {exc}"], format=dataset_format)
