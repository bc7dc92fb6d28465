"""The dataset registry: named, validated datasets a project can train on.

A dataset is either uploaded (a zip extracted into storage at `datasets/<project id>/<id>/`) or
registered (an existing `file://` folder, or an `s3://` prefix inside the configured bucket).
Either way it is validated when added; the report and status are kept with it.
"""

from __future__ import annotations

import asyncio
import uuid
import zipfile
from dataclasses import asdict
from typing import IO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth import audit
from trainyard.auth.principal import Access
from trainyard.core.db import Database
from trainyard.core.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from trainyard.datasets.models import Dataset
from trainyard.datasets.schemas import DatasetCreate, DatasetFormat, DatasetUploadFields
from trainyard.datasets.storage_uri import normalize_file_uri
from trainyard.datasets.upload import extract_to_store, plan_extraction
from trainyard_workflows.storage import (
    ObjectStore,
    StorageSettings,
    StorageUnavailable,
    StorageUriError,
    key_in_storage,
    object_store_for_uri,
    parse_storage_uri,
)
from trainyard_workflows.validation import ValidationReport, validate_location


class DatasetNotFound(NotFound):
    code = "dataset_not_found"

    def __init__(self, ref: str) -> None:
        super().__init__(f"dataset {ref!r} does not exist")


class DatasetExists(Conflict):
    code = "dataset_exists"

    def __init__(self, name: str) -> None:
        super().__init__(f"a dataset named {name!r} already exists")


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


async def register(
    db: Database, access: Access, body: DatasetCreate, storage: StorageSettings
) -> Dataset:
    """Register an existing folder or storage prefix, validated now (storage is read while no
    transaction is open: a unit of work before, one after)."""
    try:
        parsed = parse_storage_uri(body.uri)
        if parsed.scheme == "file":
            uri = normalize_file_uri(parsed.uri)
        store, prefix = object_store_for_uri(storage, parsed)
        if parsed.scheme == "s3":
            uri = parsed.uri
    except (StorageUriError, ValueError) as exc:
        raise InvalidRequest.on("uri", str(exc)) from exc
    await _refuse_taken_name(db, access.project, body.name)
    display = parsed.path if parsed.scheme == "file" else parsed.uri
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


async def upload(
    db: Database,
    access: Access,
    fields: DatasetUploadFields,
    archive_file: IO[bytes],
    store: ObjectStore,
    max_bytes: int,
) -> Dataset:
    """Extract an uploaded zip into storage under a new dataset id, then validate it (no
    transaction is open meanwhile)."""
    await _refuse_taken_name(db, access.project, fields.name)
    try:
        archive = zipfile.ZipFile(archive_file)
    except zipfile.BadZipFile as exc:
        raise InvalidRequest.on("file", f"not a zip file: {exc}") from exc
    dataset_id = new_dataset_id()
    prefix = dataset_prefix(access.project, dataset_id)
    with archive:
        plan = plan_extraction(archive, max_bytes)
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
    )
    try:
        report = await _validate(store, prefix, fields.format, fields.name)
        _apply_report(dataset, report)
        await _store(db, dataset, access, "dataset.upload")
    except BaseException:
        await asyncio.to_thread(store.delete_prefix, prefix)
        raise
    return dataset


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
    session: AsyncSession, project_id: str, ref: str, storage: StorageSettings
) -> str:
    """The URI a job's `dataset` field points to: a registered name, a file:// folder, or an
    s3:// prefix inside the configured storage (422 naming `dataset` otherwise).

    An s3:// prefix is checked without contacting storage; what lies there is checked by the
    job's validation step, before any trainer starts.
    """
    # A dataset name never contains ':' (NAME_PATTERN), so anything with one is a URI.
    if ":" in ref:
        try:
            return job_dataset_uri(ref, storage)
        except (StorageUriError, ValueError) as exc:
            raise InvalidRequest.on("dataset", str(exc)) from exc
    dataset = await _by_name(session, project_id, ref)
    if dataset is None:
        raise InvalidRequest.on(
            "dataset",
            f"{ref!r} is neither a registered dataset nor a file:// or s3:// URI of a dataset",
        )
    return dataset.uri


def job_dataset_uri(uri: str, storage: StorageSettings) -> str:
    """The normalised form of a dataset URI a job may train on; StorageUriError or ValueError
    with the reason otherwise."""
    parsed = parse_storage_uri(uri)
    if parsed.scheme == "file":
        return normalize_file_uri(parsed.uri)
    key_in_storage(storage, parsed)
    return parsed.uri


async def _by_name(session: AsyncSession, project_id: str, name: str) -> Dataset | None:
    query = select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)
    return (await session.execute(query)).scalar_one_or_none()
