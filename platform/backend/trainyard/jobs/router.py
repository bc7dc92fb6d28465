"""Public jobs API: /v1/jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from trainyard.admission.queue_status import queue_statuses
from trainyard.core.errors import SIGNED_IN_RESPONSES, error_responses
from trainyard.core.rate_limits import RATE_LIMITED_RESPONSES
from trainyard.core.settings import BackendSettings
from trainyard.deps import (
    CanCancel,
    CanRead,
    DatabaseDep,
    ProjectRead,
    ProjectSubmit,
    RateLimited,
    SessionDep,
    Settings,
    Storage,
    Store,
    Workflows,
)
from trainyard.frameworks.job_base import JobCreateBase
from trainyard.frameworks.job_create import parse_job_create
from trainyard.jobs import service
from trainyard.jobs.artifacts import LocalArtifact, open_artifact
from trainyard.jobs.models import MAX_INT_COLUMN, Job
from trainyard.jobs.schemas import EventPage, EventRead, JobPage, JobRead
from trainyard_workflows.job_states import JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=SIGNED_IN_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Submitting again with the same key returns the first job, not a new one.",
    ),
]


def job_create_body(
    body: Annotated[
        dict[str, Any],
        Body(
            description=(
                "a job of one framework (`framework`: ultralytics (default), timm or "
                "huggingface); each framework's fields, defaults and hyperparameters: "
                "GET /v1/frameworks"
            ),
            examples=[{"model": "yolo11n.yaml", "dataset": "shapes", "epochs": 10}],
        ),
    ],
) -> JobCreateBase:
    """The body as its framework's job model; a 422 names each bad field."""
    try:
        return parse_job_create(body)
    except ValidationError as error:
        details = [{**detail, "loc": ("body", *detail["loc"])} for detail in error.errors()]
        raise RequestValidationError(details) from error


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    responses={**error_responses(400, 422), **RATE_LIMITED_RESPONSES},
    dependencies=[Depends(RateLimited("submit"))],
)
async def create_job(
    body: Annotated[JobCreateBase, Depends(job_create_body)],
    response: Response,
    session: SessionDep,
    settings: Settings,
    storage: Storage,
    workflows: Workflows,
    access: ProjectSubmit,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    """Submit a training job. Its workflow starts once the job is stored; while Temporal is
    unreachable the job waits, PENDING, and starts when Temporal answers."""
    submission = await service.submit(
        session, settings, storage, workflows, access, body, idempotency_key
    )
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobRead.model_validate(submission.job, context=settings)


@router.get("", response_model=JobPage, responses=error_responses(422))
async def list_jobs(
    session: SessionDep,
    settings: Settings,
    access: ProjectRead,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT_COLUMN)] = 0,
) -> JobPage:
    """The project's jobs, newest first."""
    jobs, total = await service.list_jobs(session, access, state, limit, offset)
    return JobPage(
        items=await _reads(session, settings, jobs),
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{job_id}", response_model=JobRead, responses=error_responses(404, 422))
async def get_job(job_id: str, session: SessionDep, settings: Settings, access: CanRead) -> JobRead:
    return (await _reads(session, settings, [await service.get_job(session, access, job_id)]))[0]


async def _reads(
    session: AsyncSession, settings: BackendSettings, jobs: Sequence[Job]
) -> list[JobRead]:
    """The jobs as read, each QUEUED one with its queue status (one ledger run for them all)."""
    statuses = await queue_statuses(session, jobs)
    reads = [JobRead.model_validate(job, context=settings) for job in jobs]
    for read in reads:
        read.queue = statuses.get(read.id)
    return reads


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=error_responses(404, 409, 422),
)
async def cancel_job(
    job_id: str, db: DatabaseDep, settings: Settings, workflows: Workflows, access: CanCancel
) -> JobRead:
    """Ask the job to stop (409 if it already ended). It ends CANCELLED once its trainer stopped."""
    job = await service.cancel(db, workflows, access, job_id)
    return JobRead.model_validate(job, context=settings)


@router.get("/{job_id}/events", response_model=EventPage, responses=error_responses(404, 422))
async def list_events(
    job_id: str,
    session: SessionDep,
    access: CanRead,
    after_seq: Annotated[int, Query(ge=0, le=MAX_INT_COLUMN)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> EventPage:
    """The job's timeline after `after_seq`, in seq order."""
    events, last_seq = await service.list_events(session, access, job_id, after_seq, limit)
    return EventPage(items=[EventRead.model_validate(e) for e in events], last_seq=last_seq)


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        **error_responses(404, 422),
    },
)
async def download_artifact(
    job_id: str,
    name: str,
    session: SessionDep,
    settings: Settings,
    storage: Storage,
    store: Store,
    access: CanRead,
) -> Response:
    """Download one of the job's artifacts (`weights`, `last`, `results`: `result.artifacts`)."""
    job = await service.get_job(session, access, job_id)
    artifact = await run_in_threadpool(open_artifact, job, name, settings.data_dir, storage, store)
    if isinstance(artifact, LocalArtifact):
        # A download, as from object storage below: without a media type Starlette guesses one
        # from the name, and weights (`.pt`) would be application/vnd.snesdev-page-table.
        return FileResponse(
            artifact.path, filename=artifact.filename, media_type="application/octet-stream"
        )
    return StreamingResponse(
        artifact.chunks,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{artifact.filename}"'},
    )
