"""Object storage in a local folder (the embedded tier's `file://` storage)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from trainyard_workflows.storage.base import ObjectInfo, ObjectNotFound, StorageUnavailable
from trainyard_workflows.storage.uris import StorageUri, check_key, parse_storage_uri

_CHUNK = 1024 * 1024


class LocalObjectStore:
    """Objects are files below `root`; a key `a/b.txt` is the file `<root>/a/b.txt`."""

    def __init__(self, root: Path) -> None:
        self._root = root.expanduser().resolve()
        self._uri = parse_storage_uri(self._root.as_uri())

    @property
    def root(self) -> StorageUri:
        return self._uri

    @property
    def folder(self) -> Path:
        return self._root

    def uri_for(self, key: str) -> str:
        return self._uri.child(key).uri if key else self._uri.uri

    def local_path(self, key: str) -> Path | None:
        return self._folder(key)

    def check(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"storage folder {self._root} is not usable: {exc}") from exc
        if not os.access(self._root, os.W_OK):
            raise StorageUnavailable(f"storage folder {self._root} is not writable")

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    def _folder(self, prefix: str) -> Path:
        return self._root / check_key(prefix) if prefix else self._root

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._atomic_file(key) as handle:
            handle.write(data)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        with self._atomic_file(key) as handle:
            shutil.copyfileobj(stream, handle, _CHUNK)

    def put_file(self, key: str, path: Path) -> None:
        with path.open("rb") as source:
            self.put_stream(key, source)

    def _atomic_file(self, key: str) -> _AtomicFile:
        return _AtomicFile(self._path(key))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    def read_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        path = self._path(key)
        try:
            source = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        return _chunks_of(source, chunk_size)

    def download_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise ObjectNotFound(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self._folder(prefix)
        if base.is_file():
            return [ObjectInfo(check_key(prefix), base.stat().st_size)]
        found: list[ObjectInfo] = []
        for folder, _dirs, files in os.walk(base):
            for name in files:
                path = Path(folder) / name
                if name.startswith(".tmp-") or not path.is_file():
                    continue
                key = path.relative_to(self._root).as_posix()
                found.append(ObjectInfo(key, path.stat().st_size))
        return sorted(found, key=lambda info: info.key)

    def copy(self, source: str, destination: str) -> None:
        path = self._path(source)
        if not path.is_file():
            raise ObjectNotFound(source)
        self.put_file(destination, path)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        count = len(self.list(prefix))
        base = self._folder(prefix)
        if base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        elif base.is_file():
            base.unlink(missing_ok=True)
        return count


def _chunks_of(source: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with source:
        while chunk := source.read(chunk_size):
            yield chunk


class _AtomicFile:
    """A temp file next to the target, renamed over it on success, removed on failure."""

    def __init__(self, target: Path) -> None:
        self._target = target
        self._temp = target.parent / f".tmp-{uuid.uuid4().hex}"

    def __enter__(self) -> BinaryIO:
        self._target.parent.mkdir(parents=True, exist_ok=True)
        self._handle: BinaryIO = open(self._temp, "wb")
        return self._handle

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._handle.close()
        if exc_type is None:
            os.replace(self._temp, self._target)
        else:
            self._temp.unlink(missing_ok=True)


__all__ = ["LocalObjectStore"]
