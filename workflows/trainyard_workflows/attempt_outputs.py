"""Where an attempt's trainer may write, and the one rule for every location it reports.

A trainer runs user code, so the artifact locations of its `done` and the checkpoint paths of
its `checkpoint_saved` are untrusted: the backend accepts them only inside the attempt's own
output (its folder, and with object storage its prefix) and the worker checks local ones again,
symlinks resolved, before it reads a byte (docs/trainer-contract.md, "Trust boundary").
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

_SHA256 = re.compile(r"[0-9a-f]{64}")


class LocationRefused(ValueError):
    """A reported location lies outside the attempt's output (or is no location at all)."""


class AttemptOutput(BaseModel):
    """The attempt's output: its folder (TRAINYARD_OUTPUT_DIR) and, with object storage, its
    prefix (TRAINYARD_OUTPUT_URI)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: str = Field(min_length=2, max_length=4096, pattern=r"^/")
    output_uri: str | None = Field(default=None, max_length=4096, pattern=r"^s3://[^/]+/.")


def _segments_are_plain(path: str) -> bool:
    return all(segment not in {"", ".", ".."} for segment in path.split("/"))


def confined(location: str, output: AttemptOutput) -> str:
    """`location` if it lies inside `output`: an absolute path or ``file://`` URI below the
    attempt's folder, or an ``s3://`` URI below its prefix, with no ``.``/``..``/empty segment
    (nothing to normalise, so nothing to get wrong). LocationRefused otherwise."""
    if "\x00" in location or "\\" in location:
        raise LocationRefused(f"{location[:200]!r} is not a location")
    parts = urlsplit(location)
    if parts.scheme == "s3":
        prefix = output.output_uri
        if prefix is None or not location.startswith(prefix.rstrip("/") + "/"):
            raise LocationRefused(f"{location[:200]!r} is outside this attempt's storage prefix")
        if not _segments_are_plain(location[len(prefix.rstrip("/")) + 1 :]):
            raise LocationRefused(f"{location[:200]!r} has an empty, '.' or '..' segment")
        return location
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"} or parts.query or parts.fragment:
            raise LocationRefused(f"{location[:200]!r} is not a local file:// URI")
        path = unquote(parts.path)
    elif parts.scheme == "" and location.startswith("/"):
        path = location
    else:
        raise LocationRefused(
            f"{location[:200]!r} is neither an absolute path nor a file:// or s3:// URI"
        )
    root = output.output_dir.rstrip("/")
    if not path.startswith(root + "/") or not _segments_are_plain(path[len(root) + 1 :]):
        raise LocationRefused(f"{location[:200]!r} is outside this attempt's output folder")
    return location


def local_path(location: str) -> Path | None:
    """The local path a confined location names; None for an object-storage URI."""
    parts = urlsplit(location)
    if parts.scheme == "s3":
        return None
    return Path(unquote(parts.path) if parts.scheme == "file" else location)


def resolved_inside(path: Path, output_dir: Path) -> Path:
    """`path` with its symlinks resolved, if it and (for a folder) everything under it stays
    inside `output_dir`; LocationRefused otherwise. What the worker calls before it reads a
    trainer's file: the backend could only check the name."""
    root = Path(os.path.realpath(output_dir))
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root):
        raise LocationRefused(f"{path} leads outside this attempt's output folder")
    if real.is_dir():
        for folder, folders, files in os.walk(real):
            for name in [*folders, *files]:
                entry = Path(folder, name)
                if entry.is_symlink() and not Path(os.path.realpath(entry)).is_relative_to(root):
                    raise LocationRefused(f"{entry} leads outside this attempt's output folder")
    return real


def checkpoint_fingerprint(data: dict[str, object]) -> tuple[int, str] | None:
    """The (size, sha256) a `checkpoint_saved` event recorded, None without a valid pair."""
    size, sha256 = data.get("size"), data.get("sha256")
    valid_size = isinstance(size, int) and not isinstance(size, bool) and size >= 0
    if valid_size and isinstance(sha256, str) and _SHA256.fullmatch(sha256):
        assert isinstance(size, int)
        return size, sha256
    return None
