"""Jobs: submit, list, read, cancel and read the timeline. Every query is scoped by project
(`Access`): a job of a project the caller is not in is not found."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.fit import refuse_never_fitting
from trainyard.admission.priorities import priority_value
from trainyard.admission.submit_rules import refuse_by_project_rules
from trainyard.auth import audit
from trainyard.auth.principal import Access
from trainyard.core.db import Database
from trainyard.core.errors import Conflict, FieldError, InvalidRequest
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalUnavailable
from trainyard.datasets.service import resolve_for_job
from trainyard.frameworks.job_base import JobCreateBase
from trainyard.jobs.errors import JobNotFound
from trainyard.jobs.events import append_event, lock_job, refuse_if_terminal, transition
from trainyard.jobs.models import Job, JobEvent
from trainyard.jobs.workflow_starter import WorkflowStarter
from trainyard_workflows.job_states import JobState
from trainyard_workflows.storage import StorageSettings
from trainyard_workflows.telemetry.tracing import current_trace_id, current_traceparent

logger = logging.getLogger(__name__)


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
    workflows: WorkflowStarter,
    access: Access,
    body: JobCreateBase,
    idempotency_key: str | None,
) -> Submission:
    """Store the job; its workflow starts once the job is committed (`WorkflowStarter`), so the
    worker never meets a job it cannot read, and no transaction waits on Temporal. If Temporal
    is down the job is kept, PENDING, and the sweep starts it when Temporal answers.
    """
    check_limits(settings, body)
    await refuse_never_fitting(session, body.gpus)
    await refuse_by_project_rules(session, settings, access, body.priority, body.gpus)
    owner = access.user_id
    if idempotency_key is not None:
        earlier = await _by_idempotency_key(session, access, idempotency_key)
        if earlier is not None:
            return Submission(earlier, created=False)
    dataset_uri = await resolve_for_job(session, access.project, body.dataset, storage, settings)
    job = Job(
        id=new_job_id(),
        project_id=access.project,
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
        priority=priority_value(body.priority),
        hyperparameters=body.hyperparameters_dict(),
        state=JobState.PENDING,
        attempt=0,
        last_seq=0,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        # The job's trace is this request's (docs/operations.md, "Traces").
        trace_id=current_trace_id(),
        traceparent=current_traceparent(),
    )
    session.add(job)
    try:
        # A savepoint: losing a race on the same Idempotency-Key must not poison the request.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        earlier = await _by_idempotency_key(session, access, idempotency_key)
        if earlier is None:  # the key names one of their jobs in another project
            raise Conflict("this Idempotency-Key was used for a job in another project") from None
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
    audit.record(session, access.principal, "job.submit", project_id=job.project_id, target=job.id)
    workflows.start_after_commit(session, job)
    return Submission(job, created=True)


async def list_jobs(
    session: AsyncSession, access: Access, state: JobState | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    """The project's jobs, newest first; `total` counts every job matching the filter."""
    conditions = [Job.project_id == access.project]
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


async def get_job(session: AsyncSession, access: Access, job_id: str) -> Job:
    """The job, if the caller may perform `access.action` on it (404 when its project is not
    theirs, 403 when their role there is too weak)."""
    job = await session.get(Job, job_id)
    if job is None or not access.allows(job.project_id):
        raise JobNotFound(job_id)
    return job


async def cancel(db: Database, workflows: WorkflowStarter, access: Access, job_id: str) -> Job:
    """Ask the job to stop: the request is committed first, then delivered to the workflow.

    A job whose trainer may be running is cancelled by its workflow (which stops the trainer;
    the trainer's `done(cancelled)` ends the job). A PENDING job has nothing running yet, so it
    ends CANCELLED here; a job whose workflow is gone ends CANCELLED on delivery. If Temporal is
    down, the request stays recorded and the sweep delivers it.
    """
    async with db.session() as session:
        job = await lock_job(session, job_id)
        if not access.allows(job.project_id):
            raise JobNotFound(job_id)
        refuse_if_terminal(job)
        if not job.cancel_requested:
            job.cancel_requested = True
            append_event(session, job, "cancel_requested", "api", "cancellation requested")
            audit.record(
                session, access.principal, "job.cancel", project_id=job.project_id, target=job.id
            )
        if job.state == JobState.PENDING:
            transition(session, job, JobState.CANCELLED, "api", "cancelled before it started")
    try:
        await workflows.deliver_cancel(job_id)
    except TemporalUnavailable as error:
        logger.warning("cancel of %s recorded, not yet delivered: %s", job_id, error)
    async with db.session() as session:
        return await get_job(session, access, job_id)


async def list_events(
    session: AsyncSession, access: Access, job_id: str, after_seq: int, limit: int
) -> tuple[list[JobEvent], int]:
    """Events with seq > after_seq in seq order, and the job's newest seq."""
    job = await get_job(session, access, job_id)
    return await events_after(session, job.id, after_seq, limit), job.last_seq


async def events_after(
    session: AsyncSession, job_id: str, after_seq: int, limit: int, up_to: int | None = None
) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq)
    if up_to is not None:
        query = query.where(JobEvent.seq <= up_to)
    query = query.order_by(JobEvent.seq).limit(limit)
    return list((await session.execute(query)).scalars())


async def _by_idempotency_key(session: AsyncSession, access: Access, key: str) -> Job | None:
    query = select(Job).where(
        Job.owner == access.user_id,
        Job.project_id == access.project,
        Job.idempotency_key == key,
    )
    return (await session.execute(query)).scalar_one_or_none()
