"""Files and folders that are always whole: written beside the target, then renamed over it.

A SIGKILL (OOM killer, lost node, the platform's grace period running out) in the middle of a
plain write leaves a truncated checkpoint — the very file the next attempt resumes from — and the
previous good one is gone. So a single file (a checkpoint, ``results.csv``, the trainer's own
state files) is written to a temporary file in the same folder (same filesystem), flushed to
disk and ``os.replace``-d over the target (`replace_atomically`): at any instant the target is
either the previous version or the new one, never a torn mix. A whole folder (a checkpoint
folder written file by file) is written into a staging folder beside it (`staging_folder`) and,
once every file is there, fsynced and renamed into place (`publish_folder`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush ``path`` to disk (a rename alone survives SIGKILL; fsync also a lost node)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make renames inside ``folder`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fsync_file(folder)


def replace_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write(temporary)`` on a file next to ``target``, then rename it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        write(temporary)
        fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def write_text_atomically(target: Path, text: str) -> Path:
    """`replace_atomically` for a UTF-8 text file."""
    return replace_atomically(target, lambda temporary: temporary.write_text(text, "utf-8"))


def publish_folder(staging: Path, target: Path) -> Path:
    """fsync every file under ``staging``, then rename the folder to ``target`` (same
    filesystem). An existing ``target`` is moved aside first and removed afterwards."""
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            fsync_file(path)
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def staging_folder(parent: Path, name: str) -> Path:
    """A fresh, empty folder next to where ``name`` will be published (same filesystem)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
