"""Finding a finished job's artifact (weights, results) so the API can serve it.

A trainer reports its artifacts as locations: absolute paths or file:// URIs on the embedded
tier, s3:// URIs in storage on the production tier. Only locations the platform itself hands
out are served: a local file inside the job's own folder or the local storage root, an object
inside the configured bucket. Anything else a trainer reported (a folder, /etc/passwd) is
refused, so a buggy or hostile trainer cannot turn the download link into a file reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from trainyard.core.errors import NotFound
from trainyard.jobs.models import Job
from trainyard_workflows.storage import ObjectStore, StorageSettings
from trainyard_workflows.storage.base import ObjectNotFound
from trainyard_workflows.storage.factory import key_in_storage
from trainyard_workflows.storage.uris import StorageUriError, parse_storage_uri


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"

    def __init__(self, job_id: str, name: str, why: str) -> None:
        super().__init__(f"job {job_id} has no downloadable artifact {name!r}: {why}")


@dataclass(frozen=True)
class LocalArtifact:
    path: Path
    filename: str


@dataclass(frozen=True)
class StoredArtifact:
    chunks: Iterator[bytes]
    filename: str


Artifact = LocalArtifact | StoredArtifact


def download_name(job: Job, name: str, location: str) -> str:
    """`<job id>-<name><suffix>`: several jobs' `best.pt` must not overwrite each other."""
    return f"{job.id}-{name}{PurePosixPath(location).suffix}"


def open_artifact(
    job: Job, name: str, data_dir: Path, storage: StorageSettings, store: ObjectStore
) -> Artifact:
    """The artifact `name` of `job`, opened for reading (ArtifactNotFound otherwise).

    Blocking (file system, boto3): call it in a thread.
    """
    artifacts = (job.result or {}).get("artifacts") or {}
    location = artifacts.get(name)
    if not isinstance(location, str):
        known = ", ".join(sorted(artifacts)) or "none yet"
        raise ArtifactNotFound(job.id, name, f"its artifacts are: {known}")
    filename = download_name(job, name, location)
    if location.startswith("s3://"):
        try:
            key = key_in_storage(storage, parse_storage_uri(location))
            return StoredArtifact(store.read_chunks(key), filename)
        except StorageUriError as exc:
            raise ArtifactNotFound(job.id, name, "it lies outside the configured storage") from exc
        except ObjectNotFound as exc:
            raise ArtifactNotFound(job.id, name, "it is no longer in storage") from exc
    path = _local_path(location)
    allowed = [data_dir / "jobs" / job.id]
    local_root = store.local_path("")
    if local_root is not None:
        allowed.append(local_root)
    if path is None or not any(path.is_relative_to(root.resolve()) for root in allowed):
        raise ArtifactNotFound(job.id, name, "it lies outside the job's folder and storage")
    if not path.is_file():
        raise ArtifactNotFound(job.id, name, "it is a folder or no longer exists")
    return LocalArtifact(path, filename)


def _local_path(location: str) -> Path | None:
    if location.startswith("file://"):
        location = unquote(urlparse(location).path)
    if not location.startswith("/"):
        return None
    # resolve(): `..` and symlinks cannot lead out of the allowed folders.
    return Path(location).resolve()
