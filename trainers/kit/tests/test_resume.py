"""trainer_kit.resume: where the checkpoint is, and bringing a checkpoint file into place."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from trainer_kit.resume import ResumeError, ResumeSource, fetch_file, fetch_sibling
from trainer_kit.storage import LazyStorage, S3Location, S3Storage
from trainer_kit.testing.s3 import S3Endpoint


@pytest.mark.parametrize(
    "value", ["relative/last.pt", "gs://b/last.pt", "s3://bucket", "file://host/x/last.pt"]
)
def test_resume_source_refuses_what_is_not_a_checkpoint_location(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        ResumeSource.parse(value)


def test_resume_source_siblings() -> None:
    local = ResumeSource.parse("file:///out/run/weights/last.pt")
    assert local.sibling("best.pt").path == Path("/out/run/weights/best.pt")
    remote = ResumeSource.parse("s3://b/jobs/my%20job/run/weights/last.pt")
    assert remote.sibling("best.pt").uri == "s3://b/jobs/my%20job/run/weights/best.pt"


def test_resume_source_names_the_checkpoint() -> None:
    assert ResumeSource.parse("/out/run/checkpoints/checkpoint-4").name == "checkpoint-4"
    assert ResumeSource.parse("s3://b/jobs/j/run/checkpoints/checkpoint-4/").name == (
        "checkpoint-4"
    )


def test_a_local_checkpoint_and_the_file_beside_it_are_copied(tmp_path: Path) -> None:
    old = tmp_path / "old" / "weights"
    old.mkdir(parents=True)
    (old / "last.pt").write_bytes(b"last")
    source = ResumeSource.parse(str(old / "last.pt"))
    target = tmp_path / "new" / "weights" / "last.pt"

    fetch_file(source, target, LazyStorage())
    fetch_file(source, old / "last.pt", LazyStorage())  # already in place: nothing to do

    assert target.read_bytes() == b"last"
    assert not fetch_sibling(source, target.with_name("best.pt"), LazyStorage())
    (old / "best.pt").write_bytes(b"best")
    assert fetch_sibling(source, target.with_name("best.pt"), LazyStorage())
    assert target.with_name("best.pt").read_bytes() == b"best"
    with pytest.raises(ResumeError, match=r"checkpoint /\S+ \(TRAINYARD_RESUME_FROM\) not found"):
        fetch_file(ResumeSource.parse(str(old / "gone.pt")), target, LazyStorage())


def test_an_s3_checkpoint_is_downloaded_and_a_missing_sibling_is_only_logged(
    s3: S3Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3.bucket(f"b-{uuid.uuid4().hex[:12]}")
    s3.client().put_object(Bucket=bucket, Key="jobs/j/weights/last.pt", Body=b"last")
    storage = S3Storage(s3.client(), attempts=1, wait_max_s=0.05)
    source = ResumeSource.parse(f"s3://{bucket}/jobs/j/weights/last.pt")
    target = tmp_path / "weights" / "last.pt"

    fetch_file(source, target, lambda: storage)

    assert target.read_bytes() == b"last"
    with caplog.at_level(logging.WARNING, logger="trainyard.trainer.resume"):
        assert not fetch_sibling(source, target.with_name("best.pt"), lambda: storage)
    assert "best.pt not restored" in caplog.text
    missing = ResumeSource(uri="s3://x", s3=S3Location(bucket, "jobs/j/weights/gone.pt"))
    with pytest.raises(ResumeError, match="not downloaded"):
        fetch_file(missing, target, lambda: storage)
