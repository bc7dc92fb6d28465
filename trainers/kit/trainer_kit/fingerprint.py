"""What a checkpoint is, as its ``checkpoint_saved`` event announces it (``size`` and
``sha256``), and the check a later attempt makes before it loads one.

The platform hands the next attempt the announced pair with the path
(``TRAINYARD_RESUME_SIZE``, ``TRAINYARD_RESUME_SHA256``): a file swapped after it was announced
— by another tenant's code, a stray process, a storage fault — is refused rather than loaded
(docs/trainer-contract.md, "Trust boundary").

A folder's fingerprint (a Hugging Face checkpoint) covers every regular file under it: its
relative path, size and SHA-256, in path order; its size is the sum of theirs. A symlink in it is
refused: it could point anywhere.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_CHUNK = 1024 * 1024


class FingerprintError(Exception):
    """The checkpoint cannot be fingerprinted (missing, a symlink, not a file or folder)."""


@dataclass(frozen=True)
class Fingerprint:
    size: int
    sha256: str

    def announced(self) -> dict[str, object]:
        """The fields a ``checkpoint_saved`` event's ``data`` carries."""
        return {"size": self.size, "sha256": self.sha256}


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def fingerprint(path: Path) -> Fingerprint:
    """The size and SHA-256 of a checkpoint file or folder; FingerprintError otherwise."""
    if path.is_symlink():
        raise FingerprintError(f"{path} is a symlink")
    if path.is_file():
        return Fingerprint(*_file_digest(path))
    if not path.is_dir():
        raise FingerprintError(f"{path} is neither a file nor a folder")
    manifest = hashlib.sha256()
    total = 0
    entries: list[tuple[str, Path]] = []
    for folder, folders, files in os.walk(path):
        for name in [*folders, *files]:
            entry = Path(folder, name)
            if entry.is_symlink():
                raise FingerprintError(f"{entry} is a symlink")
            if entry.is_file():
                entries.append((entry.relative_to(path).as_posix(), entry))
    for relative, entry in sorted(entries):
        size, sha256 = _file_digest(entry)
        total += size
        manifest.update(f"{relative}\0{size}\0{sha256}\n".encode())
    return Fingerprint(total, manifest.hexdigest())


def matches(path: Path, expected: Fingerprint) -> bool:
    """Whether ``path`` is still what was announced."""
    try:
        if path.is_file() and path.stat().st_size != expected.size:
            return False  # no need to hash it
        found = fingerprint(path)
    except (FingerprintError, OSError):
        return False
    return found == expected


# What this process uploaded (URI -> the uploaded bytes' fingerprint): an announcement of an
# ``s3://`` checkpoint carries the fingerprint of exactly what went up (publishing.py).
_uploaded: dict[str, Fingerprint] = {}
_uploaded_lock = threading.Lock()


def remember_upload(uri: str, found: Fingerprint) -> None:
    with _uploaded_lock:
        _uploaded[uri] = found


def announced(where: str) -> Fingerprint:
    """The fingerprint a ``checkpoint_saved`` of ``where`` carries: of the upload this process
    made there, or of the local file or folder; FingerprintError when it is neither."""
    with _uploaded_lock:
        uploaded = _uploaded.get(where)
    if uploaded is not None:
        return uploaded
    parts = urlsplit(where)
    if parts.scheme not in {"", "file"}:
        raise FingerprintError(f"{where} was not uploaded by this process")
    return fingerprint(Path(parts.path if parts.scheme == "file" else where))
