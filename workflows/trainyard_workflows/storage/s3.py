"""Object storage in an S3-compatible bucket (AWS, MinIO, Cloudflare R2, moto) through boto3."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from trainyard_workflows.storage.base import ObjectInfo, ObjectNotFound, StorageUnavailable
from trainyard_workflows.storage.settings import StorageSettings
from trainyard_workflows.storage.uris import StorageUri, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

T = TypeVar("T")

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
# Multipart chunks of put_stream: boto3 holds a few of these in memory at a time.
_CHUNK = 8 * 1024 * 1024


class S3ObjectStore:
    """Objects below `s3://<bucket>/<prefix>`; a key `a/b.txt` is `<prefix>/a/b.txt`."""

    def __init__(self, root: StorageUri, settings: StorageSettings) -> None:
        if root.scheme != "s3":
            raise ValueError(f"{root.uri} is not an s3:// URI")
        self._root = root
        secret = settings.s3_secret_access_key
        self._client: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            config=Config(
                connect_timeout=settings.s3_connect_timeout_s,
                read_timeout=max(settings.s3_connect_timeout_s, 30.0),
                retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
                # Path-style works everywhere (MinIO and moto need it; AWS and R2 accept it).
                s3={"addressing_style": "path"},
            ),
        )

    @property
    def root(self) -> StorageUri:
        return self._root

    @property
    def bucket(self) -> str:
        return self._root.bucket

    def uri_for(self, key: str) -> str:
        return self._root.child(key).uri if key else self._root.uri

    def local_path(self, key: str) -> Path | None:
        return None

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self._root.path}/{key}" if self._root.path else key

    def _folder(self, prefix: str) -> str:
        """The S3 prefix of a folder-like key: ends with `/` unless it is the bucket root."""
        if not prefix and not self._root.path:
            return ""
        return (self._key(prefix) if prefix else self._root.path) + "/"

    def _call(self, what: str, action: Callable[[], T], key: str = "") -> T:
        """Run one boto3 call, turning its errors into the storage errors callers handle."""
        try:
            return action()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                raise ObjectNotFound(key) from exc
            if code == "NoSuchBucket":
                raise StorageUnavailable(f"bucket {self.bucket!r} does not exist") from exc
            raise StorageUnavailable(f"storage refused {what}: {code or exc}") from exc
        except BotoCoreError as exc:
            # Connection refused, timeouts, missing credentials: the message names the cause
            # (and never a secret).
            raise StorageUnavailable(f"storage unreachable during {what}: {exc}") from exc

    def check(self) -> None:
        try:
            self._call("a bucket check", lambda: self._client.head_bucket(Bucket=self.bucket))
        except ObjectNotFound as exc:  # HEAD has no body, so a missing bucket is a bare 404
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        self._call(
            f"writing {key}",
            lambda: self._client.put_object(Bucket=self.bucket, Key=full, Body=data),
        )

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        full = self._key(key)
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_chunksize=_CHUNK, max_concurrency=4)
        self._call(
            f"writing {key}",
            lambda: self._client.upload_fileobj(stream, self.bucket, full, Config=config),
        )

    def put_file(self, key: str, path: Path) -> None:
        full = self._key(key)
        self._call(f"writing {key}", lambda: self._client.upload_file(str(path), self.bucket, full))

    def get_bytes(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            return self._client.get_object(Bucket=self.bucket, Key=full)["Body"].read()

        return self._call(f"reading {key}", read, key)

    def read_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        full = self._key(key)
        # Opened here, so a missing key fails before the caller starts answering.
        body = self._call(
            f"reading {key}", lambda: self._client.get_object(Bucket=self.bucket, Key=full), key
        )["Body"]
        return self._chunks_of(key, body, chunk_size)

    def _chunks_of(self, key: str, body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            while chunk := self._call(f"reading {key}", lambda: body.read(chunk_size), key):
                yield chunk
        finally:
            body.close()

    def download_file(self, key: str, path: Path) -> None:
        full = self._key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            self._call(
                f"reading {key}",
                lambda: self._client.download_file(self.bucket, full, str(temp)),
                key,
            )
            temp.replace(path)
        finally:
            temp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._call(
                f"looking up {key}",
                lambda: self._client.head_object(Bucket=self.bucket, Key=full),
                key,
            )
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        folder = self._folder(prefix)
        strip = len(self._root.path) + 1 if self._root.path else 0

        def pages() -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    key: str = item.get("Key", "")
                    if key and not key.endswith("/"):
                        found.append(ObjectInfo(key[strip:], int(item.get("Size", 0))))
            return found

        return sorted(self._call(f"listing {prefix or '/'}", pages), key=lambda i: i.key)

    def copy(self, source: str, destination: str) -> None:
        source_key, destination_key = self._key(source), self._key(destination)
        self._call(
            f"copying {source}",
            lambda: self._client.copy_object(
                Bucket=self.bucket,
                Key=destination_key,
                CopySource={"Bucket": self.bucket, "Key": source_key},
            ),
            source,
        )

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call(
            f"deleting {key}", lambda: self._client.delete_object(Bucket=self.bucket, Key=full)
        )

    def delete_prefix(self, prefix: str) -> int:
        keys = [self._key(info.key) for info in self.list(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch: Any = {"Objects": [{"Key": key} for key in keys[start : start + 1000]]}
            self._delete_batch(prefix, batch)
        return len(keys)

    def _delete_batch(self, prefix: str, batch: Any) -> None:
        self._call(
            f"deleting {prefix}",
            lambda: self._client.delete_objects(Bucket=self.bucket, Delete=batch),
        )
