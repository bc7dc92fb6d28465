"""The dataset registry: named, validated datasets a project can train on.

A dataset is either uploaded (a zip extracted into storage at `datasets/<project id>/<id>/`) or
registered (an existing `file://` folder, or an `s3://` prefix inside the configured bucket).
Either way it is validated when added; the report and status are kept with it. Both are
bounded before anything is read or written (entries, bytes, compression ratio, the project's
storage quota, the allowed roots of local folders: docs/operations.md, "Limits"). Deleting one
removes the files the platform stored, never a registered location its owner keeps.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zipfile
from dataclasses import asdict
from typing import IO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth import audit
from trainyard.auth.principal import Access
from trainyard.core.db import Database
from trainyard.core.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from trainyard.core.settings import BackendSettings
from trainyard.datasets.location import allowed_folder, dataset_roots, walk_within_limits
from trainyard.datasets.models import Dataset
from trainyard.datasets.schemas import DatasetCreate, DatasetFormat, DatasetUploadFields
from trainyard.datasets.upload import (
    DatasetTooLarge,
    ZipLimits,
    check_declared_entries,
    extract_to_store,
    plan_extraction,
)
from trainyard.jobs.models import Job
from trainyard_workflows.job_states import TERMINAL_STATES
from trainyard_workflows.storage import (
    ObjectStore,
    StorageSettings,
    StorageUnavailable,
    StorageUriError,
    key_in_storage,
    object_store_for_uri,
    parse_storage_uri,
)
from trainyard_workflows.storage.local import LocalObjectStore
from trainyard_workflows.validation import ValidationReport, validate_location

logger = logging.getLogger(__name__)


class DatasetNotFound(NotFound):
    code = "dataset_not_found"

    def __init__(self, ref: str) -> None:
        super().__init__(f"dataset {ref!r} does not exist")


class DatasetExists(Conflict):
    code = "dataset_exists"

    def __init__(self, name: str) -> None:
        super().__init__(f"a dataset named {name!r} already exists")


class DatasetInUse(Conflict):
    code = "dataset_in_use"

    def __init__(self, ref: str, job_id: str) -> None:
        super().__init__(f"dataset {ref!r} is used by job {job_id}, which has not ended")


class StorageQuotaExceeded(DatasetTooLarge):
    code = "storage_quota_exceeded"

    def __init__(self, used: int, adding: int, quota: int) -> None:
        super().__init__(
            f"the project's datasets hold {used} bytes; {adding} more would pass its storage "
            f"quota of {quota} bytes (TRAINYARD_PROJECT_STORAGE_QUOTA_BYTES)"
        )


class StorageDown(ServiceUnavailable):
    code = "storage_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"dataset storage is unavailable: {reason}")


def new_dataset_id() -> str:
    return f"ds_{uuid.uuid4().hex}"


def dataset_prefix(project_id: str, dataset_id: str) -> str:
    """Where an uploaded dataset's files live in storage."""
    return f"datasets/{project_id}/{dataset_id}"


async def _validate(
    store: ObjectStore, prefix: str, dataset_format: DatasetFormat, display: str
) -> ValidationReport:
    try:
        return await asyncio.to_thread(validate_location, store, prefix, dataset_format, display)
    except StorageUnavailable as exc:
        raise StorageDown(str(exc)) from exc


def _apply_report(dataset: Dataset, report: ValidationReport) -> None:
    dataset.status = "valid" if report.ok else "invalid"
    dataset.report = asdict(report)


async def _insert(session: AsyncSession, dataset: Dataset) -> None:
    session.add(dataset)
    try:
        # A savepoint, so losing a race on the unique name leaves the request's transaction usable.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise DatasetExists(dataset.name) from exc


async def _refuse_taken_name(db: Database, project_id: str, name: str) -> None:
    """409 before any storage work, if the name is taken (the insert checks again)."""
    async with db.session() as session:
        if await _by_name(session, project_id, name) is not None:
            raise DatasetExists(name)


async def _store(db: Database, dataset: Dataset, access: Access, action: str) -> None:
    async with db.session() as session:
        await _insert(session, dataset)
        audit.record(
            session,
            access.principal,
            action,
            project_id=dataset.project_id,
            target=dataset.id,
            detail={"name": dataset.name, "uri": dataset.uri, "status": dataset.status},
        )


def zip_limits(settings: BackendSettings, storage: StorageSettings) -> ZipLimits:
    return ZipLimits(
        max_bytes=storage.max_upload_bytes,
        max_entries=settings.max_dataset_entries,
        max_ratio=settings.max_compression_ratio,
    )


async def register(
    db: Database,
    access: Access,
    body: DatasetCreate,
    storage: StorageSettings,
    settings: BackendSettings,
) -> Dataset:
    """Register an existing folder or storage prefix, validated now (storage is read while no
    transaction is open: a unit of work before, one after). A local folder must lie below the
    allowed roots, and is walked only as far as the limits allow before validation reads it."""
    try:
        parsed = parse_storage_uri(body.uri)
    except (StorageUriError, ValueError) as exc:
        raise InvalidRequest.on("uri", str(exc)) from exc
    if parsed.scheme == "file":
        roots = dataset_roots(settings)
        folder = await asyncio.to_thread(allowed_folder, body.uri, roots)
        uri = folder.as_uri()
        store: ObjectStore = LocalObjectStore(folder)
        prefix = ""
        display = str(folder)
        await asyncio.to_thread(
            walk_within_limits,
            folder,
            roots,
            settings.max_dataset_entries,
            storage.max_upload_bytes,
        )
    else:
        try:
            store, prefix = object_store_for_uri(storage, parsed)
        except (StorageUriError, ValueError) as exc:
            raise InvalidRequest.on("uri", str(exc)) from exc
        uri = display = parsed.uri
    await _refuse_taken_name(db, access.project, body.name)
    report = await _validate(store, prefix, body.format, display)
    dataset = Dataset(
        id=new_dataset_id(),
        project_id=access.project,
        owner=access.user_id,
        name=body.name,
        uri=uri,
        format=body.format,
    )
    _apply_report(dataset, report)
    await _store(db, dataset, access, "dataset.register")
    return dataset


async def _refuse_over_quota(db: Database, project_id: str, adding: int, quota: int | None) -> None:
    """413 when the project's stored datasets plus `adding` bytes would pass its quota."""
    if quota is None:
        return
    async with db.session() as session:
        query = select(func.coalesce(func.sum(Dataset.stored_bytes), 0)).where(
            Dataset.project_id == project_id
        )
        used = int((await session.execute(query)).scalar_one() or 0)
    if used + adding > quota:
        raise StorageQuotaExceeded(used, adding, quota)


async def upload(
    db: Database,
    access: Access,
    fields: DatasetUploadFields,
    archive_file: IO[bytes],
    store: ObjectStore,
    limits: ZipLimits,
    quota: int | None,
) -> Dataset:
    """Extract an uploaded zip into storage under a new dataset id, then validate it (no
    transaction is open meanwhile). Every limit is checked from the zip's central directory
    (and the project's quota from the database) before anything is written."""
    await _refuse_taken_name(db, access.project, fields.name)
    check_declared_entries(archive_file, limits)
    try:
        archive = zipfile.ZipFile(archive_file)
    except zipfile.BadZipFile as exc:
        raise InvalidRequest.on("file", f"not a zip file: {exc}") from exc
    dataset_id = new_dataset_id()
    prefix = dataset_prefix(access.project, dataset_id)
    with archive:
        plan = plan_extraction(archive, limits)
        await _refuse_over_quota(db, access.project, plan.total_bytes, quota)
        try:
            await asyncio.to_thread(store.check)
            await asyncio.to_thread(extract_to_store, archive, plan, store, prefix)
        except StorageUnavailable as exc:
            raise StorageDown(str(exc)) from exc
    dataset = Dataset(
        id=dataset_id,
        project_id=access.project,
        owner=access.user_id,
        name=fields.name,
        uri=store.uri_for(prefix),
        format=fields.format,
        stored_bytes=plan.total_bytes,
    )
    try:
        report = await _validate(store, prefix, fields.format, fields.name)
        _apply_report(dataset, report)
        await _store(db, dataset, access, "dataset.upload")
    except BaseException:
        await asyncio.to_thread(store.delete_prefix, prefix)
        raise
    return dataset


async def delete(db: Database, access: Access, dataset_id: str, store: ObjectStore) -> None:
    """Delete a dataset (by id, in a project of the caller's): 409 while a job that has not
    ended trains on it. The record goes first (its unit of work commits), then the files the
    platform stored for it; a registered location stays as its owner left it."""
    async with db.session() as session:
        dataset = await session.get(Dataset, dataset_id, with_for_update=True)
        if dataset is None or not access.allows(dataset.project_id):
            raise DatasetNotFound(dataset_id)
        query = (
            select(Job.id)
            .where(
                Job.project_id == dataset.project_id,
                Job.dataset_uri == dataset.uri,
                Job.state.not_in([str(state) for state in TERMINAL_STATES]),
            )
            .limit(1)
        )
        running = (await session.execute(query)).scalar_one_or_none()
        if running is not None:
            raise DatasetInUse(dataset.name, running)
        prefix = dataset_prefix(dataset.project_id, dataset.id)
        stored_here = dataset.uri == store.uri_for(prefix)
        await session.delete(dataset)
        audit.record(
            session,
            access.principal,
            "dataset.delete",
            project_id=dataset.project_id,
            target=dataset.id,
            detail={"name": dataset.name, "uri": dataset.uri, "files_removed": stored_here},
        )
    if stored_here:
        try:
            await asyncio.to_thread(store.delete_prefix, prefix)
        except StorageUnavailable as exc:
            # The deletion is committed and stands; the files are orphans under a prefix no
            # record points to (nor any quota counts), for an operator to remove.
            logger.warning(
                "dataset %s deleted, but not its files at %s: %s", dataset_id, prefix, exc
            )


async def list_datasets(session: AsyncSession, access: Access) -> list[Dataset]:
    query = select(Dataset).where(Dataset.project_id == access.project).order_by(Dataset.name)
    return list((await session.execute(query)).scalars())


async def get_dataset(session: AsyncSession, access: Access, id_or_name: str) -> Dataset:
    """By id (in any project the caller may see) or by name (in the project they act in)."""
    dataset = None
    if id_or_name.startswith("ds_"):
        dataset = await session.get(Dataset, id_or_name)
        if dataset is not None and not access.allows(dataset.project_id):
            dataset = None
    if dataset is None:
        dataset = await _by_name(session, access.project, id_or_name)
    if dataset is None:
        raise DatasetNotFound(id_or_name)
    return dataset


async def resolve_for_job(
    session: AsyncSession,
    project_id: str,
    ref: str,
    storage: StorageSettings,
    settings: BackendSettings,
) -> str:
    """The URI a job's `dataset` field points to: a registered name, a file:// folder below the
    dataset roots, or an s3:// prefix inside the configured storage (422 naming `dataset`
    otherwise; for a folder, the same answer whether it is missing or not allowed).

    An s3:// prefix is checked without contacting storage; what lies there is checked by the
    job's validation step, before any trainer starts.
    """
    # A dataset name never contains ':' (NAME_PATTERN), so anything with one is a URI.
    if ":" in ref:
        try:
            parsed = parse_storage_uri(ref)
            if parsed.scheme != "file":
                key_in_storage(storage, parsed)
                return parsed.uri
        except (StorageUriError, ValueError) as exc:
            raise InvalidRequest.on("dataset", str(exc)) from exc
        try:  # before anything else looks at the folder: no answer tells what exists
            folder = await asyncio.to_thread(allowed_folder, parsed.uri, dataset_roots(settings))
        except InvalidRequest as refused:  # FolderRefused: one answer for every reason
            raise InvalidRequest.on("dataset", refused.errors[0].message) from None
        return folder.as_uri()
    dataset = await _by_name(session, project_id, ref)
    if dataset is None:
        raise InvalidRequest.on(
            "dataset",
            f"{ref!r} is neither a registered dataset nor a file:// or s3:// URI of a dataset",
        )
    return dataset.uri


async def _by_name(session: AsyncSession, project_id: str, name: str) -> Dataset | None:
    query = select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)
    return (await session.execute(query)).scalar_one_or_none()
