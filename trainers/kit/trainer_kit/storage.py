"""Object storage for the trainer: read a dataset (or model folder) or a checkpoint from
``s3://``, and write files and whole folders to it.

The trainer talks to S3 (AWS, MinIO, R2, …) with boto3 directly — it never imports platform
code. Credentials and the endpoint come from the standard variables boto3 reads itself
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``); nothing here prints or logs them.

* `S3Storage.download_prefix` mirrors ``s3://bucket/prefix/…`` into a local folder, skipping
  files already there with the same size (an attempt started again on the same output dir
  does not fetch the dataset twice), logging its progress.
* `S3Storage.download_object` and `S3Storage.read_object` fetch one object (the checkpoint a
  retried attempt resumes from, a folder's marker).
* `S3Storage.upload_atomic` uploads one file to a temporary key, copies it server-side to the
  final key and deletes the temporary one, so a reader never sees a half-written file.
* `S3Storage.upload_folder_atomic` publishes a whole folder (a checkpoint folder, a final
  model): every file is uploaded under a temporary prefix, then copied into place, and a marker
  object (e.g. ``COMPLETE``, the folder's manifest) is written last. A reader takes a prefix as
  complete only once its marker is there.
* `LazyStorage` builds the client on first use, so runs without object storage never import
  boto3. Where run files go under ``TRAINYARD_OUTPUT_URI`` is trainer_kit/publishing.py.

Transient failures (connection errors, 5xx, throttling) are retried with tenacity; a final
failure raises `StorageError`, which fails the attempt with ``done(failed)``.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, unquote, urlsplit

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("trainyard.trainer.storage")

T = TypeVar("T")

# Tries of one storage operation (each try is itself one botocore request with its own short
# retry budget); waits 0.5, 1, 2, … s in between.
STORAGE_ATTEMPTS = 5
_PROGRESS_EVERY_S = 5.0
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "Throttling", "ThrottlingException", "SlowDown", "InternalError"}
)


class StorageError(Exception):
    """Object storage could not be read or written (after retries); fails the attempt."""


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix`` split into its parts; ``prefix`` has no leading/trailing slash."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URI: {uri!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"an s3 URI has no query or fragment: {uri!r}")
        # URIs are percent-encoded (the platform writes `my%20data` for the key `my data`).
        prefix = unquote(parts.path).strip("/")
        if any(segment in {"", ".", ".."} for segment in prefix.split("/")) and prefix:
            raise ValueError(f"s3 URI has an empty, '.' or '..' path segment: {uri!r}")
        return cls(bucket=parts.netloc, prefix=prefix)

    def key(self, relative: str) -> str:
        """The key of ``relative`` (a POSIX path) under this prefix."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri(self, relative: str = "") -> str:
        key = self.key(relative) if relative else self.prefix
        return f"s3://{self.bucket}/{quote(key)}" if key else f"s3://{self.bucket}"


def is_s3_uri(uri: str) -> bool:
    return urlsplit(uri).scheme == "s3"


def _transient(exc: BaseException) -> bool:
    """Worth another try: connection trouble, 5xx, throttling — not 403/404 or bad credentials."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
    )

    if isinstance(exc, NoCredentialsError):
        return False
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or status == 429 or error.get("Code", "") in _TRANSIENT_CODES
    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    # s3transfer wraps the ClientError of a failed upload/download in its own exceptions.
    return type(exc).__name__ in {"S3UploadFailedError", "RetriesExceededError"}


def files_under(folder: Path) -> Iterator[Path]:
    """Every file below ``folder``, in sorted order."""
    yield from sorted(p for p in folder.rglob("*") if p.is_file())


class S3Storage:
    """A boto3 S3 client configured from the standard ``AWS_*`` variables, with retries."""

    def __init__(
        self,
        client: S3Client | None = None,
        *,
        attempts: int = STORAGE_ATTEMPTS,
        wait_max_s: float = 8.0,
    ) -> None:
        self._client = client if client is not None else _default_client()
        self._attempts = attempts
        self._wait_max_s = wait_max_s

    def _retry(self, what: str, operation: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.5, max=self._wait_max_s),
            before_sleep=lambda state: log.warning(
                "storage: %s failed (try %d of %d: %s); retrying",
                what,
                state.attempt_number,
                self._attempts,
                state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        try:
            return retrying(operation)
        except Exception as exc:
            raise StorageError(f"storage: {what} failed: {exc}") from exc

    # -- reading ----------------------------------------------------------------------------

    def list_objects(self, location: S3Location) -> list[tuple[str, int]]:
        """(relative path, size) of every object under ``location`` (directory markers left out)."""
        prefix = f"{location.prefix}/" if location.prefix else ""

        def list_all() -> list[tuple[str, int]]:
            found: list[tuple[str, int]] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):
                        continue
                    found.append((key[len(prefix) :], int(item.get("Size", 0))))
            return found

        return self._retry(f"listing {location.uri()}", list_all)

    def download_prefix(
        self,
        location: S3Location,
        target: Path,
        *,
        check: Callable[[], None] = lambda: None,
    ) -> Path:
        """Mirror every object under ``location`` into ``target``; returns ``target``.

        Files already present with the same size are kept. ``check`` runs between files (the
        trainer's stop check, so SIGTERM does not wait for a whole dataset).
        """
        objects = self.list_objects(location)
        if not objects:
            raise StorageError(f"storage: no objects under {location.uri()}")
        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        todo: list[tuple[str, int, Path]] = []
        for relative, size in objects:
            path = (root / relative).resolve()
            if not path.is_relative_to(root) or ".." in PurePosixPath(relative).parts:
                raise StorageError(f"storage: key {relative!r} would leave the dataset folder")
            if path.is_file() and path.stat().st_size == size:
                continue
            todo.append((relative, size, path))
        total = sum(size for _, size, _ in todo)
        log.info(
            "dataset %s: %d files, %.1f MiB to download into %s (%d already present)",
            location.uri(),
            len(todo),
            total / 2**20,
            target,
            len(objects) - len(todo),
        )
        started = last_report = time.monotonic()
        done_bytes = 0
        for index, (relative, size, path) in enumerate(todo, start=1):
            check()
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            key = location.key(relative)
            self._retry(
                f"download of {location.uri(relative)}",
                functools.partial(self._client.download_file, location.bucket, key, str(partial)),
            )
            partial.replace(path)
            done_bytes += size
            now = time.monotonic()
            if now - last_report >= _PROGRESS_EVERY_S or index == len(todo):
                last_report = now
                log.info(
                    "dataset download: %d/%d files, %.1f/%.1f MiB",
                    index,
                    len(todo),
                    done_bytes / 2**20,
                    total / 2**20,
                )
        if todo:
            log.info("dataset downloaded in %.1f s", time.monotonic() - started)
        return target

    def download_object(self, location: S3Location, target: Path) -> Path:
        """Download the one object whose key is ``location.prefix`` to ``target`` (through a
        partial file renamed into place); returns ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        self._retry(
            f"download of {location.uri()}",
            functools.partial(
                self._client.download_file, location.bucket, location.prefix, str(partial)
            ),
        )
        partial.replace(target)
        return target

    # -- writing ----------------------------------------------------------------------------

    def upload_atomic(self, source: Path, location: S3Location, relative: str) -> str:
        """Upload ``source`` to ``location/relative`` so that the final key only ever holds a
        complete file: upload to a temporary key, server-side copy, delete the temporary key.
        Returns the final ``s3://`` URI."""
        key = location.key(relative)
        temporary = f"{key}.{uuid.uuid4().hex}.partial"
        uri = location.uri(relative)

        def upload() -> None:
            try:
                self._client.upload_file(str(source), location.bucket, temporary)
                self._client.copy(
                    {"Bucket": location.bucket, "Key": temporary}, location.bucket, key
                )
            finally:
                self._delete_quietly(location.bucket, temporary)

        self._retry(f"upload of {source.name} to {uri}", upload)
        return uri

    def read_object(self, location: S3Location) -> bytes | None:
        """The body of the object whose key is ``location.prefix``, or None when there is none."""
        from botocore.exceptions import ClientError

        def read() -> bytes | None:
            try:
                response = self._client.get_object(Bucket=location.bucket, Key=location.prefix)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                    return None
                raise
            return response["Body"].read()

        return self._retry(f"reading {location.uri()}", read)

    def upload_folder_atomic(
        self, folder: Path, location: S3Location, relative: str, marker: str, marker_body: bytes
    ) -> str:
        """Publish every file under ``folder`` at ``location/relative/…``, then the object
        ``marker`` (written last: its presence means the folder is whole). Files go to a
        temporary prefix first and are copied into place server-side; the temporary keys are
        deleted. Returns the folder's ``s3://`` URI."""
        final = location.key(relative)
        temporary = f"{final}.{uuid.uuid4().hex}.partial"
        files = [p for p in files_under(folder) if p.relative_to(folder).as_posix() != marker]
        uri = location.uri(relative)
        uploaded: list[str] = []
        try:
            # A folder published again (same name) loses its marker first: never a mix that
            # claims to be complete.
            self._retry(
                f"upload of {folder.name} to {uri} (removing an earlier {marker})",
                functools.partial(
                    self._client.delete_object, Bucket=location.bucket, Key=f"{final}/{marker}"
                ),
            )
            for path in files:
                name = path.relative_to(folder).as_posix()
                self._retry(
                    f"upload of {name} to {uri}",
                    functools.partial(
                        self._client.upload_file, str(path), location.bucket, f"{temporary}/{name}"
                    ),
                )
                uploaded.append(name)
            for name in uploaded:
                self._retry(
                    f"copy of {name} to {uri}",
                    functools.partial(
                        self._client.copy,
                        {"Bucket": location.bucket, "Key": f"{temporary}/{name}"},
                        location.bucket,
                        f"{final}/{name}",
                    ),
                )
            self._retry(
                f"upload of {marker} to {uri}",
                functools.partial(
                    self._client.put_object,
                    Bucket=location.bucket,
                    Key=f"{final}/{marker}",
                    Body=marker_body,
                ),
            )
        finally:
            for name in uploaded:
                self._delete_quietly(location.bucket, f"{temporary}/{name}")
        return uri

    def delete_prefix(self, location: S3Location, first: str | None = None) -> None:
        """Delete every object under ``location`` (``first``, e.g. a folder's marker, before the
        others, so an interrupted delete never leaves a folder that looks complete)."""
        objects = [relative for relative, _ in self.list_objects(location)]
        objects.sort(key=lambda relative: relative != first)
        for relative in objects:
            self._retry(
                f"deleting {location.uri(relative)}",
                functools.partial(
                    self._client.delete_object,
                    Bucket=location.bucket,
                    Key=location.key(relative),
                ),
            )

    def _delete_quietly(self, bucket: str, key: str) -> None:
        try:
            self._client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # the upload's own error matters more; a stray temp key is
            log.warning("storage: could not delete temporary key %s: %s", key, exc)  # harmless


def _default_client() -> S3Client:
    import boto3
    from botocore.config import Config

    # botocore's own retries stay short: tenacity above does the patient retrying.
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    client: S3Client = boto3.session.Session().client("s3", config=config)
    return client


class LazyStorage:
    """Builds the S3 client on first use: runs without object storage never import boto3."""

    def __init__(self) -> None:
        self._storage: S3Storage | None = None

    def __call__(self) -> S3Storage:
        if self._storage is None:
            self._storage = S3Storage()
        return self._storage
