"""trainer_kit.storage against a real S3 endpoint (moto in server mode; boto3 unchanged)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from trainer_kit.storage import S3Location, S3Storage, StorageError
from trainer_kit.testing.s3 import S3_SECRET, S3Endpoint, closed_port_url


def _bucket(s3: S3Endpoint) -> str:
    return s3.bucket(f"b-{uuid.uuid4().hex[:12]}")


def _fast(client_of: S3Endpoint) -> S3Storage:
    return S3Storage(client_of.client(), attempts=2, wait_max_s=0.05)


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://b", "b", ""),
        ("s3://b/", "b", ""),
        ("s3://b/datasets/u/d1/", "b", "datasets/u/d1"),
    ],
)
def test_s3_location_parses_bucket_and_prefix(uri: str, bucket: str, prefix: str) -> None:
    location = S3Location.parse(uri)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.uri("run/results.csv") == (
        f"s3://b/{prefix}/run/results.csv" if prefix else "s3://b/run/results.csv"
    )


def test_s3_location_reads_and_writes_percent_encoded_keys_as_the_platform_does() -> None:
    location = S3Location.parse("s3://b/my%20data/caf%C3%A9")

    assert location.prefix == "my data/café"
    assert location.uri("run/best 1.pt") == "s3://b/my%20data/caf%C3%A9/run/best%201.pt"


@pytest.mark.parametrize(
    "uri",
    [
        "file:///x",
        "s3:///prefix",
        "s3://b/a/../c",
        "s3://b/a/%2E%2E/c",
        "s3://b/a//c",
        "s3://b/x?y=1",
    ],
)
def test_s3_location_refuses_malformed_uris(uri: str) -> None:
    with pytest.raises(ValueError, match="s3"):
        S3Location.parse(uri)


def test_download_mirrors_the_prefix_and_skips_files_already_present(
    s3: S3Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = _bucket(s3)
    client = s3.client()
    client.put_object(Bucket=bucket, Key="sets/d1/data.yaml", Body=b"names: {0: a}\n")
    client.put_object(Bucket=bucket, Key="sets/d1/images/train/a.png", Body=b"x" * 100)
    client.put_object(Bucket=bucket, Key="sets/d1/images/", Body=b"")  # a "folder" marker
    client.put_object(Bucket=bucket, Key="sets/d10/other.txt", Body=b"not this dataset")
    target = tmp_path / "dataset"
    storage = _fast(s3)

    with caplog.at_level(logging.INFO, logger="trainyard.trainer.storage"):
        storage.download_prefix(S3Location.parse(f"s3://{bucket}/sets/d1"), target)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == ["data.yaml", "images/train/a.png"]
    assert (target / "images/train/a.png").read_bytes() == b"x" * 100
    assert "2 files, 0.0 MiB to download" in caplog.text
    assert "download: 2/2 files" in caplog.text

    caplog.clear()
    before = (target / "data.yaml").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="trainyard.trainer.storage"):
        storage.download_prefix(S3Location.parse(f"s3://{bucket}/sets/d1/"), target)
    assert "0 files, 0.0 MiB to download" in caplog.text
    assert "(2 already present)" in caplog.text
    assert (target / "data.yaml").stat().st_mtime_ns == before


def test_download_of_a_prefix_with_a_space_reads_its_objects(
    s3: S3Endpoint, tmp_path: Path
) -> None:
    bucket = _bucket(s3)
    s3.client().put_object(Bucket=bucket, Key="my sets/d1/data.yaml", Body=b"names: {0: a}\n")

    _fast(s3).download_prefix(S3Location.parse(f"s3://{bucket}/my%20sets/d1"), tmp_path)

    assert (tmp_path / "data.yaml").read_bytes() == b"names: {0: a}\n"


def test_download_of_an_empty_prefix_fails_naming_it(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = _bucket(s3)
    with pytest.raises(StorageError, match=f"no objects under s3://{bucket}/nothing"):
        _fast(s3).download_prefix(S3Location.parse(f"s3://{bucket}/nothing"), tmp_path)


def test_atomic_upload_leaves_only_the_final_key(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = _bucket(s3)
    source = tmp_path / "last.pt"
    source.write_bytes(b"checkpoint" * 1000)

    uri = _fast(s3).upload_atomic(source, S3Location.parse(f"s3://{bucket}/jobs/j"), "w/last.pt")

    assert uri == f"s3://{bucket}/jobs/j/w/last.pt"
    assert s3.keys(bucket) == ["jobs/j/w/last.pt"]
    body = s3.client().get_object(Bucket=bucket, Key="jobs/j/w/last.pt")["Body"].read()
    assert body == source.read_bytes()


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return root


def test_folder_upload_writes_the_marker_last_and_leaves_no_temporary_keys(
    s3: S3Endpoint, tmp_path: Path
) -> None:
    bucket = _bucket(s3)
    client = s3.client()
    folder = _folder(tmp_path / "checkpoint-4", {"model.safetensors": b"w" * 100, "sub/a": b"a"})
    location = S3Location.parse(f"s3://{bucket}/jobs/j/attempt 1")

    uri = _fast(s3).upload_folder_atomic(
        folder, location, "run/checkpoints/checkpoint-4", "COMPLETE", b"manifest"
    )

    assert uri == f"s3://{bucket}/jobs/j/attempt%201/run/checkpoints/checkpoint-4"
    keys = s3.keys(bucket)
    assert keys == [
        "jobs/j/attempt 1/run/checkpoints/checkpoint-4/COMPLETE",
        "jobs/j/attempt 1/run/checkpoints/checkpoint-4/model.safetensors",
        "jobs/j/attempt 1/run/checkpoints/checkpoint-4/sub/a",
    ]
    heads = {key: client.head_object(Bucket=bucket, Key=key)["LastModified"] for key in keys}
    assert heads[keys[0]] >= max(heads.values()), "the marker is the newest object"
    marker = S3Location(bucket, "jobs/j/attempt 1/run/checkpoints/checkpoint-4/COMPLETE")
    assert _fast(s3).read_object(marker) == b"manifest"
    assert _fast(s3).read_object(S3Location(bucket, "jobs/j/nothing")) is None


def test_unreachable_endpoint_fails_after_retries_without_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=closed_port_url(),
        aws_access_key_id="id",
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    source = tmp_path / "last.pt"
    source.write_bytes(b"w")
    storage = S3Storage(client, attempts=3, wait_max_s=0.05)

    with caplog.at_level(logging.DEBUG), pytest.raises(StorageError) as info:
        storage.upload_atomic(source, S3Location.parse("s3://b/jobs/j"), "last.pt")

    assert str(info.value).startswith("storage: upload of last.pt to s3://b/jobs/j/last.pt failed")
    retries = [
        r
        for r in caplog.records
        if r.name == "trainyard.trainer.storage" and "retrying" in r.message
    ]
    assert len(retries) == 2
    assert S3_SECRET not in caplog.text + str(info.value)


def test_bad_credentials_are_not_retried(s3: S3Endpoint, tmp_path: Path) -> None:
    bucket = _bucket(s3)
    storage = _fast(s3)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        storage.list_objects(S3Location.parse(f"s3://{bucket}-missing/x"))
