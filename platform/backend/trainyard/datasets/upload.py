"""Dataset uploads: the request body is spooled to a bounded temp file, then the zip is
checked as a whole and extracted entry by entry into storage.

Nothing is written to storage until every entry has been checked (no `..`, no absolute
names, no symlinks, total uncompressed size within the limit), so a rejected zip leaves
nothing behind; a storage failure half-way removes what was written.
"""

from __future__ import annotations

import posixpath
import stat
import zipfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import IO

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from trainyard.core.errors import InvalidRequest, TrainyardError
from trainyard_workflows.storage import ObjectStore

# Room for the multipart boundaries and the small form fields around the zip.
_FORM_OVERHEAD = 64 * 1024
# Files zip tools add that are not part of any dataset.
_IGNORED = ("__MACOSX/", ".DS_Store")
# Top folders that belong to a dataset's own layout, never a wrapping folder to strip.
_LAYOUT_FOLDERS = frozenset({"train", "val", "test", "images", "labels"})


class UploadTooLarge(TrainyardError):
    status_code = 413
    code = "upload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")


@dataclass
class SpooledUpload:
    fields: dict[str, str]
    file: IO[bytes]
    size: int


async def _bounded(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge(limit - _FORM_OVERHEAD)
        yield chunk


async def spool_upload(request: Request, max_bytes: int) -> SpooledUpload:
    """Parse a multipart body with one `file` part; 413 as soon as it passes `max_bytes`.

    Starlette's parser keeps the file in a SpooledTemporaryFile (1 MiB in memory, then on
    disk), so memory stays bounded whatever the size; the caller closes `file`.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + _FORM_OVERHEAD:
        raise UploadTooLarge(max_bytes)
    parser = MultiPartParser(
        request.headers, _bounded(request, max_bytes + _FORM_OVERHEAD), max_files=1, max_fields=8
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest.on("file", f"not a valid multipart upload: {exc.message}") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest.on("file", "a zip file is required in the form field 'file'")
    size = upload.size if upload.size is not None else 0
    if size > max_bytes:
        await upload.close()
        raise UploadTooLarge(max_bytes)
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    return SpooledUpload(fields, upload.file, size)


@dataclass(frozen=True)
class ZipPlan:
    """The entries to extract, as (zip member, key below the dataset prefix)."""

    entries: list[tuple[zipfile.ZipInfo, str]]
    total_bytes: int


def plan_extraction(archive: zipfile.ZipFile, max_bytes: int) -> ZipPlan:
    """Check every entry before anything is written; InvalidRequest on `file` otherwise."""
    members: list[tuple[zipfile.ZipInfo, str]] = []
    total = 0
    for info in archive.infolist():
        name = info.filename
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidRequest.on(
                "file", f"zip entry {name!r} is a symlink; symlinks are refused"
            )
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or "\\" in name:
            raise InvalidRequest.on("file", f"zip entry {name!r} has an absolute or Windows path")
        parts = name.split("/")
        if ".." in parts:
            raise InvalidRequest.on("file", f"zip entry {name!r} escapes the dataset folder")
        if info.is_dir() or name.startswith(_IGNORED[0]) or parts[-1] == _IGNORED[1]:
            continue
        total += info.file_size
        if total > max_bytes:
            raise InvalidRequest.on(
                "file", f"the zip expands to more than the limit of {max_bytes} bytes"
            )
        key = posixpath.normpath(name)
        members.append((info, key))
    if not members:
        raise InvalidRequest.on("file", "the zip holds no files")
    return ZipPlan(_strip_common_folder(members), total)


def _strip_common_folder(
    members: list[tuple[zipfile.ZipInfo, str]],
) -> list[tuple[zipfile.ZipInfo, str]]:
    """A zip of a folder (`shapes/data.yaml`, …) is stored as the folder's content."""
    tops = {key.split("/", 1)[0] for _, key in members}
    if len(tops) != 1 or tops <= _LAYOUT_FOLDERS or any("/" not in key for _, key in members):
        return members
    return [(info, key.split("/", 1)[1]) for info, key in members]


class _Counted:
    """A zip member reader that refuses to produce more bytes than the member declared
    (zipfile checks this too; this keeps the bound independent of that)."""

    def __init__(self, source: IO[bytes], limit: int) -> None:
        self._source = source
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise zipfile.BadZipFile("entry larger than declared")
        return data


def extract_to_store(
    archive: zipfile.ZipFile, plan: ZipPlan, store: ObjectStore, prefix: str
) -> None:
    """Write every planned entry below `prefix`; on any failure remove what was written."""
    try:
        for info, key in plan.entries:
            with archive.open(info) as member:
                store.put_stream(f"{prefix}/{key}", _Counted(member, info.file_size))  # type: ignore[arg-type]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        store.delete_prefix(prefix)
        raise InvalidRequest.on("file", f"the zip is corrupt: {exc}") from exc
    except BaseException:
        store.delete_prefix(prefix)
        raise
