"""Checkpoint fingerprints: what ``checkpoint_saved`` announces and what a resume checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_kit.fingerprint import (
    Fingerprint,
    FingerprintError,
    announced,
    fingerprint,
    matches,
    remember_upload,
)
from trainer_kit.resume import ResumeError, ResumeSource, fetch_checkpoint
from trainer_kit.storage import S3Storage


def _no_storage() -> S3Storage:
    raise AssertionError("a local checkpoint needs no storage")


def test_a_files_fingerprint_is_its_size_and_sha256(tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"abc")

    assert fingerprint(checkpoint) == Fingerprint(
        3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert announced(str(checkpoint)).announced() == {
        "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }


def test_a_folders_fingerprint_covers_every_file_and_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-4"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "sub" / "state.json").write_text("{}")
    before = fingerprint(folder)

    assert before.size == len(b"weights") + 2
    (folder / "sub" / "state.json").rename(folder / "sub" / "other.json")
    assert fingerprint(folder) != before  # same bytes, another name
    (folder / "sub" / "other.json").rename(folder / "sub" / "state.json")
    assert fingerprint(folder) == before


def test_a_symlink_is_never_fingerprinted(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "passwd").symlink_to("/etc/passwd")
    (tmp_path / "last.pt").symlink_to("/etc/passwd")

    for path in (tmp_path / "folder", tmp_path / "last.pt"):
        with pytest.raises(FingerprintError, match="symlink"):
            fingerprint(path)


def test_an_upload_is_announced_with_the_fingerprint_of_what_went_up(tmp_path: Path) -> None:
    uploaded = Fingerprint(5, "0" * 64)
    remember_upload("s3://bucket/jobs/job_a/attempt-1/last.pt", uploaded)

    assert announced("s3://bucket/jobs/job_a/attempt-1/last.pt") == uploaded
    with pytest.raises(FingerprintError):
        announced("s3://bucket/jobs/job_a/attempt-1/other.pt")


def test_a_checkpoint_changed_since_its_announcement_is_refused_at_resume(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "attempt-1" / "last.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"epoch 2")
    as_announced = fingerprint(checkpoint)
    target = tmp_path / "attempt-2" / "last.pt"
    target.parent.mkdir()

    fetch_checkpoint(ResumeSource.parse(str(checkpoint), as_announced), target, _no_storage)
    assert matches(target, as_announced)

    checkpoint.write_bytes(b"epoch 9")  # same size, other bytes
    with pytest.raises(ResumeError, match="is not the one its checkpoint_saved announced"):
        fetch_checkpoint(ResumeSource.parse(str(checkpoint), as_announced), target, _no_storage)
