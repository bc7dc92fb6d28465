"""trainer_kit.atomic_save: a target is always either the old or the new version."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_kit.atomic_save import (
    publish_folder,
    replace_atomically,
    staging_folder,
    write_text_atomically,
)


def test_replace_writes_beside_the_target_and_renames_it_over(tmp_path: Path) -> None:
    target = tmp_path / "weights" / "last.pt"
    seen: list[Path] = []

    def write(temporary: Path) -> None:
        seen.append(temporary)
        assert temporary.parent == target.parent
        assert not target.exists()
        temporary.write_bytes(b"new")

    assert replace_atomically(target, write) == target
    assert target.read_bytes() == b"new"
    assert not seen[0].exists()
    assert write_text_atomically(target, "epoch\n1\n").read_text(encoding="utf-8") == "epoch\n1\n"


def test_a_failed_write_keeps_the_previous_version_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    target = write_text_atomically(tmp_path / "results.csv", "old")

    def write(temporary: Path) -> None:
        temporary.write_text("torn", encoding="utf-8")
        raise KeyboardInterrupt  # a kill in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(target, write)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_a_staged_folder_is_published_whole_replacing_an_earlier_one(tmp_path: Path) -> None:
    checkpoints = tmp_path / "run" / "checkpoints"
    target = checkpoints / "checkpoint-2"
    target.mkdir(parents=True)
    (target / "stale.bin").write_bytes(b"old")
    staging = staging_folder(tmp_path / "run" / ".staging", "checkpoint-2")
    assert staging.is_dir()
    assert not list(staging.iterdir())
    (staging / "sub").mkdir()
    (staging / "sub" / "model.safetensors").write_bytes(b"w")

    assert publish_folder(staging, target) == target

    assert not staging.exists()
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "sub",
        "sub/model.safetensors",
    ]
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-2"]  # the old one is gone
