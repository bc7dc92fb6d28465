"""Where the trainer's dataset comes from: a local ``file://`` folder or an ``s3://`` prefix
downloaded first, and the sanitised ``data.yaml`` Ultralytics is given."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from trainer.control import StopFlag
from trainer.settings import TrainerSettings
from trainer.storage import S3Location, S3Storage, is_s3_uri

log = logging.getLogger(__name__)


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
) -> tuple[Path, bool]:
    """The dataset's local folder, and whether it is a downloaded copy of an ``s3://`` prefix."""
    if not is_s3_uri(settings.dataset_uri):
        return dataset_folder(settings.dataset_uri), False
    try:
        location = S3Location.parse(settings.dataset_uri)
    except ValueError as exc:
        raise UnsupportedDatasetURIError(str(exc)) from None
    store = (storage or LazyStorage())()
    check = stop.check if stop is not None else (lambda: None)
    return store.download_prefix(location, private / "dataset", check=check), True


def prepare_data(
    settings: TrainerSettings,
    private: Path,
    storage: LazyStorage | None = None,
    stop: StopFlag | None = None,
) -> str:
    """Ultralytics' ``data``: a sanitised copy of ``data.yaml`` (the folder itself for classify)."""
    folder, downloaded = local_dataset(settings, private, storage, stop)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    if settings.task == "classify":
        return str(folder)
    source = folder / "data.yaml"
    if not source.is_file():
        raise FileNotFoundError(f"dataset has no data.yaml: {source}")
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{source} is not a YAML mapping")
    root = Path(str(data["path"])) if data.get("path") else folder
    if downloaded and root.is_absolute():
        # An absolute path names a folder on the machine the dataset was uploaded from.
        log.info("data.yaml path %s replaced by the downloaded copy %s", root, folder)
        root = folder
    data["path"] = str(root if root.is_absolute() else (folder / root).resolve())
    if data.pop("download", None) is not None:
        log.info("ignoring the 'download' key of %s: the trainer never downloads datasets", source)
    target = private / "data.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return str(target)
