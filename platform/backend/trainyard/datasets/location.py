"""Which local folders may be registered as datasets, and a walk of one that stops at the limits.

A `file://` dataset must resolve (symlinks and `..` followed) to a folder below one of the
configured roots (`TRAINYARD_DATASET_ROOTS`; unset: the user's home and the data folder in the
embedded tier, the data folder alone in production). "Missing", "not a folder" and "not
allowed" are one answer, byte for byte, so registration tells nobody what exists on the host.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from trainyard.core.errors import FieldError, InvalidRequest
from trainyard.core.settings import BackendSettings
from trainyard.datasets.upload import TooManyEntries, UncompressedTooLarge


class FolderRefused(InvalidRequest):
    """The one answer for a folder that is missing, not a folder, or outside the roots."""

    code = "dataset_folder_refused"

    def __init__(self) -> None:
        # Not even the URI is echoed: the answer must be the same bytes for every such folder.
        super().__init__(
            [
                FieldError(
                    "uri",
                    "not an existing folder below the allowed dataset roots "
                    "(TRAINYARD_DATASET_ROOTS)",
                )
            ]
        )


def dataset_roots(settings: BackendSettings) -> list[Path]:
    """The resolved folders below which file:// datasets may lie."""
    if settings.dataset_roots is not None:
        roots = settings.dataset_roots
    elif settings.is_sqlite:
        roots = [Path.home(), settings.data_dir]
    else:
        roots = [settings.data_dir]
    return [root.expanduser().resolve() for root in roots]


def _below(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def allowed_folder(uri: str, roots: list[Path]) -> Path:
    """The resolved folder a `file://` URI names, if it lies below `roots`; FolderRefused
    (the same answer whatever the reason) otherwise. Blocking (touches the file system)."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise InvalidRequest.on("uri", f"{uri[:300]!r} is not a local file:// URI")
    if parts.query or parts.fragment:
        raise InvalidRequest.on("uri", f"{uri[:300]!r} has a query or fragment")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise InvalidRequest.on("uri", f"{uri[:300]!r} is not an absolute path")
    try:
        resolved = path.resolve()
        if not _below(resolved, roots) or not resolved.is_dir():
            raise FolderRefused()
    except (OSError, RuntimeError) as exc:  # a loop of links, a path too long, no permission
        raise FolderRefused() from exc
    return resolved


def walk_within_limits(folder: Path, roots: list[Path], max_entries: int, max_bytes: int) -> None:
    """Walk `folder` as validation will, but stop as soon as it passes `max_entries` files
    or `max_bytes` in all (413), and refuse a link that leads outside `roots` (validation
    would read through it). Blocking."""
    entries = 0
    total = 0
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            listing = os.scandir(current)
        except OSError:
            continue  # unreadable: validation reports what it cannot read
        with listing:
            for entry in listing:
                entries += 1
                if entries > max_entries:
                    raise TooManyEntries(entries, max_entries)
                path = Path(entry.path)
                if entry.is_symlink():
                    if not _below(path.resolve(), roots):
                        relative = path.relative_to(folder).as_posix()
                        raise InvalidRequest.on(
                            "uri", f"{relative[:200]!r} links outside the allowed dataset roots"
                        )
                    if entry.is_dir():
                        continue  # not followed, as validation's walk does not follow it
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.is_file():
                    total += entry.stat().st_size
                    if total > max_bytes:
                        raise UncompressedTooLarge(max_bytes)
