"""A read-only view of one dataset's files in object storage, keyed relative to its root.

The checks list the dataset once and then only read objects, so they cost the same on a
local folder and on S3 (one LIST per 1000 objects, one GET per image and label file).
"""

from __future__ import annotations

import hashlib
import io
import posixpath

from PIL import Image

from trainyard_workflows.storage import ObjectNotFound, ObjectStore
from trainyard_workflows.storage.local import LocalObjectStore

# Formats Pillow reads and Ultralytics trains on.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"})


def is_image(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in IMAGE_SUFFIXES


class DatasetFiles:
    """The objects below `prefix` of `store`; `display` is how messages name the dataset."""

    def __init__(self, store: ObjectStore, prefix: str, display: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.display = display
        base = len(self.prefix) + 1 if self.prefix else 0
        # Keys hidden from users (a local store's half-written temp files) are not listed.
        self.sizes = {info.key[base:]: info.size for info in store.list(self.prefix)}

    def missing_reason(self) -> str | None:
        """Why the dataset has nothing to check, or None when it has files."""
        if self.sizes:
            return None
        if isinstance(self.store, LocalObjectStore) and not self.store.folder.is_dir():
            return f"dataset folder {self.display} does not exist"
        return f"dataset {self.display} is empty"

    def is_file(self, key: str) -> bool:
        return key in self.sizes

    def is_dir(self, key: str) -> bool:
        """A folder with files in it, or (local stores only, which have folders) an empty one."""
        folder = key.rstrip("/") + "/"
        if key in ("", ".") or any(name.startswith(folder) for name in self.sizes):
            return True
        local = self.store.local_path(f"{self.prefix}/{key}" if self.prefix else key)
        return local is not None and local.is_dir()

    def files_under(self, key: str) -> list[str]:
        """Every file below folder `key` ('' = the whole dataset), sorted."""
        if key in ("", "."):
            return sorted(self.sizes)
        folder = key.rstrip("/") + "/"
        return sorted(name for name in self.sizes if name.startswith(folder))

    def read(self, key: str) -> bytes:
        full = f"{self.prefix}/{key}" if self.prefix else key
        return self.store.get_bytes(full)

    def read_text(self, key: str) -> str:
        """A text file's content; OSError-like failures come back as ValueError."""
        try:
            return self.read(key).decode("utf-8")
        except (ObjectNotFound, UnicodeDecodeError) as exc:
            raise ValueError(str(exc)) from exc


def image_digest(data: bytes) -> str | None:
    """The image's content hash, or None when Pillow cannot read it (corrupt, truncated)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.verify()
    except Exception:  # Pillow raises many types for a bad file; all mean "unreadable"
        return None
    return hashlib.sha256(data).hexdigest()
