"""Parsing and checking of storage URIs: `file:///abs/path` and `s3://bucket/key/prefix`.

Every URI a user hands in goes through `parse_storage_uri`, so a `..` or an unknown scheme is
refused in one place, before any file or object is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

SCHEMES = ("file", "s3")
# S3's bucket naming rules (also what MinIO and R2 accept).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StorageUriError(ValueError):
    """A dataset or storage URI that cannot be used; the message says why."""


@dataclass(frozen=True)
class StorageUri:
    """A parsed URI. `path` is `/abs/folder` for file://, the key prefix (no slashes at either
    end, maybe empty) for s3://."""

    scheme: Literal["file", "s3"]
    bucket: str
    path: str

    @property
    def uri(self) -> str:
        """The normalised form: no trailing slash, no `localhost`, percent-encoded."""
        if self.scheme == "file":
            return f"file://{quote(self.path)}"
        return f"s3://{self.bucket}/{quote(self.path)}" if self.path else f"s3://{self.bucket}"

    def child(self, key: str) -> StorageUri:
        """The URI of `key` below this one (`key` is checked like a URI path)."""
        parts = _segments(key, key)
        if not parts:
            return self
        joined = "/".join(parts)
        if self.scheme == "file":
            return StorageUri("file", "", f"{self.path.rstrip('/')}/{joined}")
        return StorageUri("s3", self.bucket, f"{self.path}/{joined}" if self.path else joined)

    def key_below(self, other: StorageUri) -> str:
        """The key of `other` relative to this URI ('' when equal); StorageUriError when
        `other` lies outside it (another scheme, bucket or prefix)."""
        if other.scheme != self.scheme or other.bucket != self.bucket:
            raise StorageUriError(f"{other.uri} is outside the configured storage {self.uri}")
        base = self.path.strip("/")
        target = other.path.strip("/")
        if base == target:
            return ""
        if base and not target.startswith(base + "/"):
            raise StorageUriError(f"{other.uri} is outside the configured storage {self.uri}")
        return target[len(base) + 1 :] if base else target


def _segments(uri: str, path: str) -> list[str]:
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise StorageUriError(f"{uri!r} contains '..'; give the location without it")
    if any("\x00" in part or "\\" in part for part in parts):
        raise StorageUriError(f"{uri!r} contains a NUL byte or a backslash")
    return parts


def parse_storage_uri(uri: str) -> StorageUri:
    """Parse and check a `file://` or `s3://` URI; StorageUriError with the reason otherwise."""
    parts = urlsplit(uri.strip())
    if parts.scheme not in SCHEMES:
        shown = f"'{parts.scheme}://'" if parts.scheme else "no scheme"
        raise StorageUriError(
            f"{uri!r} has {shown}; a dataset URI is file:///absolute/path or s3://bucket/prefix"
        )
    if parts.query or parts.fragment:
        raise StorageUriError(f"{uri!r} has a query or fragment; a storage URI has neither")
    segments = _segments(uri, unquote(parts.path))
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageUriError(f"{uri!r} names another host ({parts.netloc})")
        if not parts.path.startswith("/"):
            raise StorageUriError(f"{uri!r} is not an absolute path")
        return StorageUri("file", "", str(PurePosixPath("/", *segments)))
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket):
        raise StorageUriError(f"{uri!r} does not name a valid bucket")
    return StorageUri("s3", bucket, "/".join(segments))


def check_key(key: str) -> str:
    """A key as stored: relative, `/`-separated, no `..`; StorageUriError otherwise."""
    if key.startswith("/"):
        raise StorageUriError(f"key {key!r} is absolute; keys are relative to the storage root")
    parts = _segments(key, key)
    if not parts:
        raise StorageUriError("an empty key names no object")
    return "/".join(parts)
