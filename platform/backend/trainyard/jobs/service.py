"""Jobs: submit, list, read, cancel and read the timeline. All queries are scoped by owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.core.errors import FieldError, InvalidRequest
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalGateway
from trainyard.datasets.service import resolve_for_job
from trainyard.frameworks.job_base import JobCreateBase
from trainyard.jobs.errors import JobNotFound, JobTerminal
from trainyard.jobs.events import append_event, lock_job, transition
from trainyard.jobs.models import Job, JobEvent
from trainyard.jobs.orchestration import cancel_training, start_training
from trainyard_workflows.job_states import JobState
from trainyard_workflows.storage import StorageSettings


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Submission:
    job: Job
    # False when the Idempotency-Key matched an earlier submission (nothing new was started).
    created: bool


def check_limits(settings: BackendSettings, body: JobCreateBase) -> None:
    """The deployment's limits, reported like schema errors (422 naming each field)."""
    errors = [
        FieldError(name, f"must be ≤ {limit} on this platform, got {value}")
        for name, value, limit in (
            ("epochs", body.epochs, settings.max_epochs),
            ("batch", body.batch, settings.max_batch),
            ("gpus", body.gpus, settings.max_gpus),
        )
        if value > limit
    ]
    if errors:
        raise InvalidRequest(errors)


async def submit(
    session: AsyncSession,
    settings: BackendSettings,
    storage: StorageSettings,
    temporal: TemporalGateway,
    owner: str,
    body: JobCreateBase,
    idempotency_key: str | None,
) -> Submission:
    """Store the job and start its workflow in one unit of work.

    The workflow is started before the transaction commits: if Temporal refuses, the request
    fails (503) and the rollback leaves no job behind. The worker may call the internal API
    before the commit lands; it retries 404 for that reason.
    """
    check_limits(settings, body)
    if idempotency_key is not None:
        earlier = await _by_idempotency_key(session, owner, idempotency_key)
        if earlier is not None:
            return Submission(earlier, created=False)
    dataset_uri = await resolve_for_job(session, owner, body.dataset, storage)
    client = await temporal.client()
    job = Job(
        id=new_job_id(),
        owner=owner,
        framework=body.framework,
        model=body.model,
        dataset=body.dataset,
        dataset_uri=dataset_uri,
        task=body.task,
        epochs=body.epochs,
        imgsz=body.imgsz,
        batch=body.batch,
        gpus=body.gpus,
        hyperparameters=body.hyperparameters_dict(),
        state=JobState.PENDING,
        attempt=0,
        last_seq=0,
        cancel_requested=False,
        idempotency_key=idempotency_key,
    )
    session.add(job)
    try:
        # A savepoint: losing a race on the same Idempotency-Key must not poison the request.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        earlier = await _by_idempotency_key(session, owner, idempotency_key)
        if earlier is None:
            raise
        return Submission(earlier, created=False)
    # Not a `state` event: creation is not a transition (state events always have a `from`).
    append_event(
        session,
        job,
        "submitted",
        "api",
        f"submitted {job.model} on {job.dataset} for {job.epochs} epochs",
        {
            "state": JobState.PENDING.value,
            "framework": job.framework,
            "model": job.model,
            "dataset": job.dataset,
            "dataset_uri": job.dataset_uri,
            "epochs": job.epochs,
        },
    )
    await start_training(temporal, client, job, settings)
    return Submission(job, created=True)


async def list_jobs(
    session: AsyncSession, owner: str, state: JobState | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    """Newest first; `total` counts every job matching the filter."""
    conditions = [Job.owner == owner]
    if state is not None:
        conditions.append(Job.state == state)
    total = await session.execute(select(func.count()).select_from(Job).where(*conditions))
    query = (
        select(Job)
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    jobs = list((await session.execute(query)).scalars())
    return jobs, int(total.scalar_one())


async def get_job(session: AsyncSession, owner: str, job_id: str) -> Job:
    job = await session.get(Job, job_id)
    if job is None or job.owner != owner:
        raise JobNotFound(job_id)
    return job


async def cancel(session: AsyncSession, temporal: TemporalGateway, owner: str, job_id: str) -> Job:
    """Ask the job to stop.

    A job whose trainer may be running is cancelled by its workflow (which stops the trainer;
    the trainer's `done(cancelled)` ends the job). A PENDING job has nothing running yet, and a
    job whose workflow is gone has nobody left to finish it, so both end CANCELLED here.
    """
    job = await lock_job(session, job_id, owner)
    if JobState(job.state).terminal:
        raise JobTerminal(job.id, job.state)
    client = await temporal.client()
    workflow_found = await cancel_training(temporal, client, job.id)
    if not job.cancel_requested:
        job.cancel_requested = True
        append_event(session, job, "cancel_requested", "api", "cancellation requested")
    if job.state == JobState.PENDING:
        transition(session, job, JobState.CANCELLED, "api", "cancelled before it started")
    elif not workflow_found:
        transition(session, job, JobState.CANCELLED, "api", "cancelled (its workflow had ended)")
    return job


async def list_events(
    session: AsyncSession, owner: str, job_id: str, after_seq: int, limit: int
) -> tuple[list[JobEvent], int]:
    """Events with seq > after_seq in seq order, and the job's newest seq."""
    job = await get_job(session, owner, job_id)
    return await events_after(session, job.id, after_seq, limit), job.last_seq


async def events_after(
    session: AsyncSession, job_id: str, after_seq: int, limit: int, up_to: int | None = None
) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq)
    if up_to is not None:
        query = query.where(JobEvent.seq <= up_to)
    query = query.order_by(JobEvent.seq).limit(limit)
    return list((await session.execute(query)).scalars())


async def _by_idempotency_key(session: AsyncSession, owner: str, key: str) -> Job | None:
    query = select(Job).where(Job.owner == owner, Job.idempotency_key == key)
    return (await session.execute(query)).scalar_one_or_none()
