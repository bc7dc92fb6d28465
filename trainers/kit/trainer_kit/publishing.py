"""Making the run's files visible where the platform reads them.

A run without object storage leaves its files where they are (`local_path`). With
``TRAINYARD_OUTPUT_URI`` a `RunPublisher` uploads them under that URI with the output dir's
relative layout (``run/weights/last.pt`` → ``<output uri>/run/weights/last.pt``):

* `RunPublisher.publish` uploads one file atomically (a stable snapshot of it first);
* `RunPublisher.publish_files` uploads every file of a folder, one by one (the run folder at
  the end of training);
* `RunPublisher.publish_folder` publishes a folder as a whole, its marker last (a checkpoint
  folder), and `RunPublisher.unpublish_folder` removes one again, its marker first.

``RunPublisher.uploaded`` maps each relative path to the URI of its last complete upload: the
artifacts ``done`` reports.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trainer_kit.fingerprint import fingerprint, remember_upload
from trainer_kit.storage import S3Location, S3Storage, StorageError, files_under

log = logging.getLogger("trainyard.trainer.storage")

# Makes a saved file visible where the platform reads it; returns where it now is.
Publish = Callable[[Path], str]


def local_path(path: Path) -> str:
    """The `Publish` of a run without object storage: the file stays where it is."""
    return str(path)


class RunPublisher:
    """Publishes files of the output dir under ``TRAINYARD_OUTPUT_URI`` (same relative layout)."""

    def __init__(self, storage: Callable[[], S3Storage], output_uri: str, output_dir: Path) -> None:
        self._storage = storage
        self._location = S3Location.parse(output_uri)
        self._output_dir = output_dir
        self.uploaded: dict[str, str] = {}  # relative path → URI of its last complete upload

    @property
    def location(self) -> S3Location:
        return self._location

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self._output_dir.resolve()).as_posix()

    def publish(self, path: Path) -> str:
        """Upload one file of the output dir atomically; returns its ``s3://`` URI.

        Uploads a stable snapshot: a checkpoint another process is still writing or replacing
        (DDP's rank 0) is copied again until its size and mtime hold still across the copy.
        """
        relative = self.relative(path)
        with tempfile.TemporaryDirectory(dir=self._output_dir / ".trainer") as scratch:
            snapshot = Path(scratch) / path.name
            _stable_copy(path, snapshot)
            uploaded = fingerprint(snapshot)
            uri = self._storage().upload_atomic(snapshot, self._location, relative)
        remember_upload(uri, uploaded)
        self.uploaded[relative] = uri
        log.info("published %s", uri)
        return uri

    def publish_files(self, folder: Path) -> None:
        """Upload every file under ``folder`` (the run's weights and result files), each one
        atomically."""
        for path in files_under(folder):
            self.publish(path)

    def publish_folder(self, folder: Path, marker: str, marker_body: bytes) -> str:
        """Publish a folder of the output dir atomically (files, then ``marker`` last);
        returns its ``s3://`` URI."""
        relative = self.relative(folder)
        uploaded = fingerprint(folder)
        uri = self._storage().upload_folder_atomic(
            folder, self._location, relative, marker, marker_body
        )
        remember_upload(uri, uploaded)
        self.uploaded[relative] = uri
        log.info("published %s", uri)
        return uri

    def unpublish_folder(self, relative: str, marker: str) -> None:
        """Delete a folder published earlier (an old checkpoint), its marker first."""
        self._storage().delete_prefix(
            S3Location(self._location.bucket, self._location.key(relative)), first=marker
        )
        self.uploaded.pop(relative, None)


def _stable_copy(source: Path, target: Path, tries: int = 20) -> None:
    for _ in range(tries):
        before = source.stat()
        shutil.copyfile(source, target)
        after = source.stat()
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            return
        time.sleep(0.25)
    raise StorageError(f"storage: {source} kept changing while it was being copied")
