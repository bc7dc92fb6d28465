"""trainer_kit.sources: dataset (and model folder) locations."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.sources import UnsupportedDatasetURIError, dataset_folder, local_folder
from trainer_kit.storage import LazyStorage, S3Storage
from trainer_kit.testing.s3 import S3Endpoint


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///data/my%20set", "/data/my set"),
        ("file://localhost/data/set", "/data/set"),
        ("/data/set", "/data/set"),
    ],
)
def test_dataset_folder_maps_file_uris(uri: str, path: str) -> None:
    assert dataset_folder(uri) == Path(path)


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("gs://bucket/set", "unsupported dataset URI scheme 'gs'"),
        ("file://otherhost/set", "unsupported dataset URI host"),
        ("relative/set", "not an absolute"),
    ],
)
def test_dataset_folder_refuses_other_uris(uri: str, match: str) -> None:
    with pytest.raises(UnsupportedDatasetURIError, match=match):
        dataset_folder(uri)


def test_a_local_folder_is_used_where_it_is_and_must_exist(tmp_path: Path) -> None:
    assert local_folder(tmp_path.as_uri(), tmp_path / "unused") == tmp_path
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        local_folder((tmp_path / "nope").as_uri(), tmp_path / "unused", what="model")
    with pytest.raises(UnsupportedDatasetURIError, match="s3"):
        local_folder("s3://bucket/a/../b", tmp_path / "unused")


class _Storage(LazyStorage):
    def __init__(self, storage: S3Storage) -> None:
        super().__init__()
        self._storage = storage


def test_an_s3_prefix_is_mirrored_checking_for_a_stop_between_files(
    s3: S3Endpoint, tmp_path: Path
) -> None:
    bucket = s3.bucket(f"b-{uuid.uuid4().hex[:12]}")
    s3.client().put_object(Bucket=bucket, Key="sets/d1/train/a.png", Body=b"a")
    storage = _Storage(S3Storage(s3.client(), attempts=2, wait_max_s=0.05))

    folder = local_folder(f"s3://{bucket}/sets/d1", tmp_path / "dataset", storage, StopFlag())

    assert folder == tmp_path / "dataset"
    assert (folder / "train" / "a.png").read_bytes() == b"a"
    stop = StopFlag()
    stop.request_cancel()
    with pytest.raises(TrainingCancelled):
        local_folder(f"s3://{bucket}/sets/d1", tmp_path / "again", storage, stop)
