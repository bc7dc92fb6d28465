"""trainer_kit.publishing against a real S3 endpoint (moto in server mode; boto3 unchanged)."""

from __future__ import annotations

import uuid
from pathlib import Path

from trainer_kit.publishing import RunPublisher, local_path
from trainer_kit.storage import S3Storage
from trainer_kit.testing.s3 import S3Endpoint


def _bucket(s3: S3Endpoint) -> str:
    return s3.bucket(f"b-{uuid.uuid4().hex[:12]}")


def _fast(client_of: S3Endpoint) -> S3Storage:
    return S3Storage(client_of.client(), attempts=2, wait_max_s=0.05)


def test_without_object_storage_a_file_stays_where_it_is(tmp_path: Path) -> None:
    assert local_path(tmp_path / "run" / "weights" / "last.pt") == str(
        tmp_path / "run" / "weights" / "last.pt"
    )


def test_publisher_keeps_the_output_dir_layout(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = _bucket(s3)
    out = tmp_path / "out"
    (out / ".trainer").mkdir(parents=True)
    (out / "run").mkdir(parents=True)
    (out / "run" / "results.csv").write_text("epoch\n1\n")
    storage = _fast(s3)
    publisher = RunPublisher(lambda: storage, f"s3://{bucket}/jobs/j/attempt-1", out)

    uri = publisher.publish(out / "run" / "results.csv")

    assert uri == f"s3://{bucket}/jobs/j/attempt-1/run/results.csv"
    assert s3.keys(bucket) == ["jobs/j/attempt-1/run/results.csv"]
    assert publisher.uploaded["run/results.csv"] == uri
    assert list((out / ".trainer").iterdir()) == []  # the snapshot scratch space is cleaned up


def test_publisher_publishes_every_file_of_a_folder_in_the_output_dir_layout(
    s3: S3Endpoint, tmp_path: Path
) -> None:
    bucket = _bucket(s3)
    out = tmp_path / "out"
    (out / ".trainer").mkdir(parents=True)
    (out / "run" / "weights").mkdir(parents=True)
    (out / "run" / "weights" / "last.pt").write_bytes(b"w")
    (out / "run" / "results.csv").write_text("epoch\n1\n")
    storage = _fast(s3)
    publisher = RunPublisher(lambda: storage, f"s3://{bucket}/jobs/j/attempt-1", out)

    publisher.publish_files(out / "run")

    assert s3.keys(bucket) == [
        "jobs/j/attempt-1/run/results.csv",
        "jobs/j/attempt-1/run/weights/last.pt",
    ]
    assert publisher.uploaded["run/weights/last.pt"] == (
        f"s3://{bucket}/jobs/j/attempt-1/run/weights/last.pt"
    )
    assert list((out / ".trainer").iterdir()) == []  # the snapshot scratch space is cleaned up


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return root


def test_publisher_unpublishes_a_folder_marker_first(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = _bucket(s3)
    out = tmp_path / "out"
    folder = _folder(out / "run" / "checkpoints" / "checkpoint-2", {"model.safetensors": b"w"})
    (out / ".trainer").mkdir()
    storage = _fast(s3)
    publisher = RunPublisher(lambda: storage, f"s3://{bucket}/jobs/j/attempt-1", out)
    uri = publisher.publish_folder(folder, "COMPLETE", b"{}")
    assert publisher.uploaded == {"run/checkpoints/checkpoint-2": uri}

    publisher.unpublish_folder("run/checkpoints/checkpoint-2", "COMPLETE")

    assert s3.keys(bucket) == []
    assert publisher.uploaded == {}
