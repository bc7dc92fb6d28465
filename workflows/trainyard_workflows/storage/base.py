"""The object storage interface every implementation (local folder, S3) provides.

Keys are relative, `/`-separated paths below the store's root (`datasets/<owner>/<id>/x.jpg`),
checked by `uris.check_key`. Methods are blocking (boto3 is): call them from async code
through `asyncio.to_thread`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from trainyard_workflows.storage.uris import StorageUri


class StorageError(Exception):
    """Base of the storage errors."""


class StorageUnavailable(StorageError):
    """The storage cannot be reached or refuses us (network, credentials, missing bucket)."""


class ObjectNotFound(StorageError):
    """No object under that key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object {key!r} in storage")
        self.key = key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    """A flat namespace of objects below one root URI."""

    @property
    def root(self) -> StorageUri:
        """The URI of the store's root (`file:///…/storage`, `s3://bucket/prefix`)."""
        ...

    def uri_for(self, key: str) -> str:
        """The URI of a key (or of a folder-like prefix), as stored in the database."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file a key is on this machine (local stores), None where it has none (S3)."""
        ...

    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers (cheap: one request)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write an object (replacing any); readers never see a half-written one."""
        ...

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Write an object from a file-like object, in chunks (never whole in memory)."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Write an object from a local file."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's content; ObjectNotFound if there is none."""
        ...

    def read_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes in chunks (ObjectNotFound before the first one if it is absent),
        so large files (weights) are served without holding them in memory."""
        ...

    def download_file(self, key: str, path: Path) -> None:
        """Copy an object to a local file (parents created); ObjectNotFound if there is none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object exists under exactly this key."""
        ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object below the folder-like `prefix` ('' = all), recursively, sorted by key."""
        ...

    def copy(self, source: str, destination: str) -> None:
        """Server-side copy (an S3 CopyObject); how a complete temp object is made visible."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; no error if it does not exist."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object below the folder-like `prefix`; returns how many."""
        ...
