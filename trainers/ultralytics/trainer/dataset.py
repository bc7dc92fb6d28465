"""The sanitised ``data.yaml`` Ultralytics is given, from the dataset's local folder (a
``file://`` folder, or an ``s3://`` prefix downloaded first: trainer_kit/sources.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from trainer_kit.control import StopFlag
from trainer_kit.sources import local_folder
from trainer_kit.storage import LazyStorage, is_s3_uri

from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)


def prepare_data(
    settings: TrainerSettings,
    private: Path,
    storage: LazyStorage | None = None,
    stop: StopFlag | None = None,
) -> str:
    """Ultralytics' ``data``: a sanitised copy of ``data.yaml`` (the folder itself for classify)."""
    folder = local_folder(settings.dataset_uri, private / "dataset", storage, stop)
    downloaded = is_s3_uri(settings.dataset_uri)
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
