"""The internal API (worker -> backend), docs/architecture.md. Not in the public OpenAPI.

Every route needs `Authorization: Bearer <TRAINYARD_INTERNAL_TOKEN>` (401 otherwise).
"""

from __future__ import annotations

import functools
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from trainyard.admission import external_queue
from trainyard.admission import service as admission
from trainyard.core.db import after_commit
from trainyard.core.errors import Unauthorized
from trainyard.deps import SessionDep, Settings, Temporal
from trainyard.internal import service
from trainyard.internal.schemas import InternalJobRead
from trainyard.jobs.models import MAX_INT_COLUMN
from trainyard.jobs.orchestration import wake
from trainyard.jobs.schemas import EventPage, EventRead, JobRead
from trainyard.jobs.service import events_after
from trainyard_workflows.attempt_outputs import AttemptOutput
from trainyard_workflows.internal_api import (
    AdmissionAnswer,
    AttemptGrant,
    ExternalQueuePlace,
    LatestCheckpoint,
    Liveness,
    RequeueRequest,
    TrackingUpdate,
    TransitionRequest,
    WorkerEvent,
)

_bearer = HTTPBearer(auto_error=False)


def require_internal_token(
    settings: Settings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = settings.internal_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(expected, given):
        raise Unauthorized(
            "the internal API needs Authorization: Bearer <TRAINYARD_INTERNAL_TOKEN>"
        )


router = APIRouter(
    prefix="/internal/v1/jobs",
    include_in_schema=False,
    dependencies=[Depends(require_internal_token)],
)


@router.post("/{job_id}/transition", response_model=JobRead)
async def transition(job_id: str, body: TransitionRequest, session: SessionDep) -> JobRead:
    """Move the job forward; repeating its current state is a no-op (200).

    409 when the move is backwards or the job is terminal: the caller treats it as "already
    decided".
    """
    return JobRead.model_validate(await service.apply_transition(session, job_id, body))


@router.post("/{job_id}/admission", response_model=AdmissionAnswer)
async def request_admission(
    job_id: str, session: SessionDep, settings: Settings, temporal: Temporal
) -> AdmissionAnswer:
    """The validated job asks to start: admitted now, or QUEUED with its place and why, or
    refused when it can never fit here. Asking again is harmless (the workflow rechecks)."""
    preempt = settings.preemption != "off"
    answer, wakeups = await admission.request_admission(session, job_id, preempt)
    # This pass admitted waiting jobs too, or chose running ones to give way: tell them.
    after_commit(session, functools.partial(wake, temporal, wakeups.admitted, wakeups.preempted))
    return answer


@router.post("/{job_id}/requeue", response_model=JobRead)
async def requeue(job_id: str, body: RequeueRequest, session: SessionDep) -> JobRead:
    """The preempted job's trainer stopped: back to QUEUED until admitted again. 409 once the
    job ended (the caller reads its state)."""
    return JobRead.model_validate(
        await admission.requeue_preempted(session, job_id, body.attempt, body.by)
    )


@router.put("/{job_id}/external-queue", status_code=status.HTTP_204_NO_CONTENT)
async def hold_in_external_queue(
    job_id: str, body: ExternalQueuePlace, session: SessionDep
) -> None:
    """Kueue holds the job's attempt at this place: QUEUED, with it as the job's `queue`.
    409 once the job ended."""
    await external_queue.hold_in_external_queue(session, job_id, body)


@router.delete("/{job_id}/external-queue", status_code=status.HTTP_204_NO_CONTENT)
async def release_from_external_queue(
    job_id: str, attempt: Annotated[int, Query(ge=1, le=1_000_000)], session: SessionDep
) -> None:
    """Kueue admitted the job's attempt: it starts. 409 once the job ended."""
    await external_queue.release_from_external_queue(session, job_id, attempt)


@router.post("/{job_id}/events", status_code=status.HTTP_202_ACCEPTED, response_model=EventRead)
async def record_event(job_id: str, body: WorkerEvent, session: SessionDep) -> EventRead:
    return EventRead.model_validate(await service.record_event(session, job_id, body))


@router.post("/{job_id}/attempts/{attempt}", response_model=AttemptGrant)
async def start_attempt(
    job_id: str,
    attempt: Annotated[int, Path(ge=1, le=1_000_000)],
    output: AttemptOutput,
    session: SessionDep,
    settings: Settings,
) -> AttemptGrant:
    """Make `attempt` current, record where its trainer may write (`output`), and hand out
    its callback token."""
    return await service.start_attempt(session, settings, job_id, attempt, output)


@router.get("/{job_id}", response_model=InternalJobRead)
async def get_job(job_id: str, session: SessionDep) -> InternalJobRead:
    """The job whoever owns it (the worker acts for every owner), with its project's slug."""
    return await service.job_for_worker(session, job_id)


@router.get("/{job_id}/events", response_model=EventPage)
async def list_events(
    job_id: str,
    session: SessionDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_INT_COLUMN)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> EventPage:
    """The job's timeline after `after_seq`, in seq order (the tracking sync reads it)."""
    job = await service.job_by_id(session, job_id)
    events = await events_after(session, job.id, after_seq, limit)
    return EventPage(items=[EventRead.model_validate(e) for e in events], last_seq=job.last_seq)


@router.post("/{job_id}/tracking", response_model=JobRead)
async def record_tracking(
    job_id: str, body: TrackingUpdate, session: SessionDep, settings: Settings
) -> JobRead:
    """Store the job's MLflow run (and model version); the response's `tracking` links to it."""
    job = await service.record_tracking(session, job_id, body, settings.mlflow_link_base)
    return JobRead.model_validate(job)


@router.get("/{job_id}/liveness", response_model=Liveness)
async def liveness(job_id: str, session: SessionDep) -> Liveness:
    return await service.liveness(session, job_id)


@router.get("/{job_id}/checkpoint", response_model=LatestCheckpoint)
async def latest_checkpoint(job_id: str, session: SessionDep) -> LatestCheckpoint:
    """The newest checkpoint the job's trainers announced: where a new attempt resumes."""
    return await service.latest_checkpoint(session, job_id)
