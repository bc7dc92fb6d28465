"""Where a dataset (or a saved model folder) comes from: a local ``file://`` folder, or an
``s3://`` prefix mirrored into the output dir first. What must be inside is each trainer's own
business (its trainer/dataset.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from trainer_kit.control import StopFlag
from trainer_kit.storage import LazyStorage, S3Location, is_s3_uri


class UnsupportedDatasetURIError(ValueError):
    """The dataset URI is neither a local ``file://`` folder nor an ``s3://`` prefix."""


def dataset_folder(uri: str, what: str = "dataset") -> Path:
    """``file:///abs/path`` (or a bare absolute path) → the local folder."""
    parts = urlsplit(uri)
    if parts.scheme not in {"file", ""}:
        raise UnsupportedDatasetURIError(
            f"unsupported {what} URI scheme {parts.scheme!r} in {uri!r} "
            "(file:// and s3:// are supported)"
        )
    if parts.netloc not in {"", "localhost"}:
        raise UnsupportedDatasetURIError(f"unsupported {what} URI host {parts.netloc!r} in {uri!r}")
    path = Path(unquote(parts.path)).expanduser()
    if not path.is_absolute():
        raise UnsupportedDatasetURIError(f"{what} URI {uri!r} is not an absolute file:// path")
    return path


def local_folder(
    uri: str,
    target: Path,
    storage: LazyStorage | None = None,
    stop: StopFlag | None = None,
    what: str = "dataset",
) -> Path:
    """The local folder of ``uri``: itself for ``file://`` (it must exist), else an ``s3://``
    prefix mirrored into ``target`` (between files, ``stop`` is checked)."""
    if not is_s3_uri(uri):
        folder = dataset_folder(uri, what)
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {folder}")
        return folder
    try:
        location = S3Location.parse(uri)
    except ValueError as exc:
        raise UnsupportedDatasetURIError(str(exc)) from None
    store = (storage or LazyStorage())()
    check = stop.check if stop is not None else (lambda: None)
    return store.download_prefix(location, target, check=check)
