"""Files that are always whole: write next to the target, fsync, then rename over it.

A SIGKILL (OOM killer, lost node, the platform's grace period running out) in the middle of a
plain write leaves a truncated ``last.pt`` — the very file the next attempt resumes from — and
the previous good one is gone. Every checkpoint, ``results.csv`` and the trainer's own state
files are therefore written to a temporary file in the same folder (same filesystem), flushed
to disk and ``os.replace``-d over the target: at any instant the target is either the previous
version or the new one, never a torn mix.
"""

from __future__ import annotations

import contextlib
import os
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
    return replace_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
