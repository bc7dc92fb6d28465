"""Public datasets API: /v1/datasets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import ValidationError

from trainyard.auth.principal import Access
from trainyard.auth.roles import Action
from trainyard.core.errors import (
    SIGNED_IN_RESPONSES,
    InvalidRequest,
    TrainyardError,
    error_responses,
    field_errors,
)
from trainyard.core.rate_limits import RATE_LIMITED_RESPONSES
from trainyard.datasets import service
from trainyard.datasets.schemas import (
    DatasetCreate,
    DatasetPage,
    DatasetRead,
    DatasetUploadFields,
)
from trainyard.datasets.upload import spool_upload
from trainyard.deps import (
    DatabaseDep,
    Permit,
    ProjectRead,
    ProjectWriteDatasets,
    RateLimited,
    SessionDep,
    Settings,
    Storage,
    Store,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=SIGNED_IN_RESPONSES)
# The paths that take multipart uploads: their bodies are bounded by the upload limit, every
# other body by the JSON limit (core/body_limits.py).
UPLOAD_PATHS = frozenset({router.prefix})


class UnsupportedMediaType(TrainyardError):
    status_code = 415
    code = "unsupported_media_type"


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": DatasetCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "file"],
                    "properties": {
                        "name": {"type": "string"},
                        "format": {"type": "string", "enum": ["yolo", "imagefolder", "text"]},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
        "required": True,
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses={**error_responses(409, 413, 415, 422, 503), **RATE_LIMITED_RESPONSES},
    openapi_extra=_BODY_DOC,
    dependencies=[Depends(RateLimited("upload"))],  # uploads and registrations alike
)
async def add_dataset(
    request: Request,
    db: DatabaseDep,
    access: ProjectWriteDatasets,
    storage: Storage,
    store: Store,
    settings: Settings,
) -> DatasetRead:
    """Upload a zip (multipart: name, format, file) or register an existing storage location
    (JSON: name, uri, format). Either way the dataset is validated now: see `status` and
    `report`. 409 if the name is taken, 413 over a limit (size, entries, compression ratio, the
    project's storage quota), 415 for a body neither JSON nor multipart, 422 for a folder that
    is not below the allowed roots, 503 if storage is down."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        spooled = await spool_upload(request, storage.max_upload_bytes)
        try:
            fields = _parse(DatasetUploadFields, spooled.fields)
            dataset = await service.upload(
                db,
                access,
                fields,
                spooled.file,
                store,
                service.zip_limits(settings, storage),
                settings.project_storage_quota_bytes,
            )
        finally:
            spooled.file.close()
    else:
        _require_json(content_type)
        try:
            body = DatasetCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidRequest(field_errors(exc.errors())) from exc
        dataset = await service.register(db, access, body, storage, settings)
    return DatasetRead.model_validate(dataset)


def _require_json(content_type: str) -> None:
    """As FastAPI reads a JSON body: no Content-Type, or application/json (or `+json`)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if (
        media
        and media != "application/json"
        and not (media.startswith("application/") and media.endswith("+json"))
    ):
        raise UnsupportedMediaType(
            f"send application/json (name, uri, format) or multipart/form-data (a zip), not {media}"
        )


def _parse(model: type[DatasetUploadFields], fields: dict[str, str]) -> DatasetUploadFields:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequest(field_errors(exc.errors())) from exc


@router.get("", response_model=DatasetPage)
async def list_datasets(session: SessionDep, access: ProjectRead) -> DatasetPage:
    """The project's datasets, by name."""
    datasets = await service.list_datasets(session, access)
    return DatasetPage(items=[DatasetRead.model_validate(d) for d in datasets])


@router.get("/{id_or_name}", response_model=DatasetRead, responses=error_responses(404, 422))
async def get_dataset(id_or_name: str, session: SessionDep, access: ProjectRead) -> DatasetRead:
    """A dataset with its validation status and report (a name is looked up in the project the
    request acts in, an id in every project of the caller's)."""
    return DatasetRead.model_validate(await service.get_dataset(session, access, id_or_name))


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404, 409),
)
async def delete_dataset(
    dataset_id: str,
    db: DatabaseDep,
    access: Annotated[Access, Depends(Permit(Action.WRITE_DATASETS))],
    store: Store,
) -> Response:
    """Delete a dataset by id, and the files the platform stored for it (an upload's); a
    registered file:// or s3:// location is left as it is. 409 while a job that has not
    ended trains on it."""
    await service.delete(db, access, dataset_id, store)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
