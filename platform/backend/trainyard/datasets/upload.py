"""Dataset uploads: the request body is spooled to a bounded temp file, then the zip is
checked as a whole and extracted entry by entry into storage.

Nothing is written to storage until every entry has been checked (no `..`, no absolute
names, no symlinks) and the zip's central directory is within the limits (entry count,
total uncompressed size, each large entry's compression ratio: `ZipLimits`), so a rejected
zip leaves nothing behind; a storage failure half-way removes what was written. The entry
count is read from the end record before the central directory is parsed, so a zip of a
million empty entries costs no memory; extraction counts each entry's bytes and stops at its
declared size, so a central directory that lies about sizes gains nothing.
"""

from __future__ import annotations

import posixpath
import stat
import struct
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


class DatasetTooLarge(TrainyardError):
    """An upload (or a registered folder) over one of the dataset limits; names the limit."""

    status_code = 413
    code = "dataset_too_large"


class TooManyEntries(DatasetTooLarge):
    code = "dataset_too_many_entries"

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"the dataset holds {count} entries, more than the limit of {limit} "
            "(TRAINYARD_MAX_DATASET_ENTRIES)"
        )


class UncompressedTooLarge(DatasetTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the dataset expands to more than the limit of {limit} bytes "
            "(TRAINYARD_MAX_UPLOAD_BYTES)"
        )


class RatioTooHigh(DatasetTooLarge):
    code = "zip_ratio_too_high"

    def __init__(self, name: str, ratio: float, limit: float) -> None:
        super().__init__(
            f"zip entry {name[:200]!r} expands {ratio:.0f} times, more than the limit of "
            f"{limit:g} (TRAINYARD_MAX_COMPRESSION_RATIO)"
        )


# Entries smaller than this are not judged by their ratio: a small file of zeros or repeated
# text compresses very well and harms nobody.
RATIO_FLOOR_BYTES = 1024 * 1024
# A central directory record is 46 bytes plus the entry's name and extra fields; this allows
# long names and every common extra field, and bounds what parsing the directory may cost.
_DIRECTORY_BYTES_PER_ENTRY = 46 + 4096


@dataclass(frozen=True)
class ZipLimits:
    """What an uploaded zip may expand to (the defaults are BackendSettings' and
    StorageSettings': docs/operations.md, "Limits")."""

    max_bytes: int  # total uncompressed size (TRAINYARD_MAX_UPLOAD_BYTES)
    max_entries: int  # entries, folders included (TRAINYARD_MAX_DATASET_ENTRIES)
    max_ratio: float  # of each entry of RATIO_FLOOR_BYTES or more


def upload_body_limit(max_upload_bytes: int) -> int:
    """The largest multipart body an upload may send: the zip and its small form fields."""
    return max_upload_bytes + _FORM_OVERHEAD


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


def declared_entries(file: IO[bytes]) -> tuple[int, int] | None:
    """(entries, central directory bytes) as the zip's end record declares them, read without
    parsing the directory; None when there is no end record (zipfile then refuses the file)."""
    file.seek(0, 2)
    size = file.tell()
    tail_size = min(size, 22 + 65535)  # the end record and the longest comment
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    entries, directory_bytes = struct.unpack("<2xHL", tail[at + 8 : at + 16])
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
        # Zip64: the real figures are in the zip64 end record, found through its locator.
        locator = tail[at - 20 : at] if at >= 20 else b""
        if locator[:4] != b"PK\x06\x07":
            return None
        (record_offset,) = struct.unpack("<Q", locator[8:16])
        file.seek(record_offset)
        record = file.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return None
        entries, directory_bytes = struct.unpack("<QQ", record[32:48])
    file.seek(0)
    return entries, directory_bytes


def check_declared_entries(file: IO[bytes], limits: ZipLimits) -> None:
    """Refuse a zip whose end record declares too many entries (or too large a central
    directory for its count) before zipfile parses that directory into memory."""
    declared = declared_entries(file)
    if declared is None:
        return
    entries, directory_bytes = declared
    if entries > limits.max_entries:
        raise TooManyEntries(entries, limits.max_entries)
    if directory_bytes > max(entries, 1) * _DIRECTORY_BYTES_PER_ENTRY:
        raise InvalidRequest.on("file", "the zip's central directory is larger than its entries")


def plan_extraction(archive: zipfile.ZipFile, limits: ZipLimits) -> ZipPlan:
    """Check every entry before anything is written: InvalidRequest on `file` for a
    dangerous name, DatasetTooLarge (413) over a limit."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:  # the end record may understate it
        raise TooManyEntries(len(infos), limits.max_entries)
    members: list[tuple[zipfile.ZipInfo, str]] = []
    total = 0
    for info in infos:
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
        if total > limits.max_bytes:
            raise UncompressedTooLarge(limits.max_bytes)
        if info.file_size >= RATIO_FLOOR_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise RatioTooHigh(name, ratio, limits.max_ratio)
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
        # Never ask for more than one byte past the declared size: a lie is caught at once.
        if size < 0 or size > self._left + 1:
            size = self._left + 1
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
