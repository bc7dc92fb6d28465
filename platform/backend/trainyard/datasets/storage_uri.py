"""Dataset locations. The embedded tier only knows local folders (`file:///abs/path`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit


def local_folder(uri: str) -> Path:
    """The existing folder a `file://` URI names; ValueError with a readable reason otherwise."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ValueError(f"{uri!r} is not a file:// URI")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{uri!r} names another host ({parts.netloc}); only local files work")
    if parts.query or parts.fragment:
        raise ValueError(f"{uri!r} has a query or fragment; a folder URI has neither")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ValueError(f"{uri!r} is not an absolute path")
    if not path.is_dir():
        raise ValueError(f"folder {path} does not exist")
    return path


def normalize_file_uri(uri: str) -> str:
    """`file:///abs/folder` for an existing folder (no trailing slash, no `localhost`)."""
    return local_folder(uri).as_uri()
