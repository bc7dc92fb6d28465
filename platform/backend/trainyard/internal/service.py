"""The worker's requests: transitions, events, attempts and liveness of a job."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.priorities import priority_name
from trainyard.auth.models import Project
from trainyard.callbacks import tokens
from trainyard.core.errors import Conflict
from trainyard.core.settings import BackendSettings
from trainyard.internal.schemas import InternalJobRead
from trainyard.jobs.errors import JobNotFound
from trainyard.jobs.events import append_event, lock_job, refuse_if_terminal, transition
from trainyard.jobs.models import Job, JobEvent
from trainyard.jobs.schemas import JobRead
from trainyard_workflows.attempt_outputs import AttemptOutput, checkpoint_fingerprint
from trainyard_workflows.event_types import CHECKPOINT_SAVED
from trainyard_workflows.internal_api import (
    AttemptGrant,
    Checkpoint,
    LatestCheckpoint,
    Liveness,
    TrackingUpdate,
    TransitionRequest,
    WorkerEvent,
)
from trainyard_workflows.job_states import JobState


class AttemptSuperseded(Conflict):
    """The worker asked for an attempt older than the job's current one (409)."""

    code = "attempt_superseded"


async def apply_transition(session: AsyncSession, job_id: str, body: TransitionRequest) -> Job:
    job = await lock_job(session, job_id)
    transition(session, job, body.state, "worker", body.reason)
    return job


async def record_event(session: AsyncSession, job_id: str, body: WorkerEvent) -> JobEvent:
    """Store a worker event, unless the job ended (409, `refuse_if_terminal`): log lines that
    race the trainer's `done`, a validation report that finishes after a cancel, a clean-up
    or tracking note after the end are the worker's to log, not the timeline's."""
    job = await lock_job(session, job_id)
    refuse_if_terminal(job)
    return append_event(session, job, body.type, "worker", body.message, body.data)


def callback_token(settings: BackendSettings, job: Job, attempt: int) -> str:
    """The callback token of `attempt` of `job`: it expires at the job's deadline (its
    submission plus `max_run_duration_s`) plus `callback_token_grace_s`."""
    deadline = job.created_at.timestamp() + settings.max_run_duration_s
    expires_at = int(deadline) + settings.callback_token_grace_s
    return tokens.issue(settings.callback_keys, job.id, attempt, expires_at)


async def start_attempt(
    session: AsyncSession,
    settings: BackendSettings,
    job_id: str,
    attempt: int,
    output: AttemptOutput,
) -> AttemptGrant:
    """Make `attempt` current, keep its output (the only place its trainer may report
    files in), and hand out its callback token (same answer when repeated)."""
    job = await lock_job(session, job_id)
    refuse_if_terminal(job)
    if attempt < job.attempt:
        raise AttemptSuperseded(
            f"job {job.id} is already at attempt {job.attempt}; attempt {attempt} is superseded"
        )
    if attempt > job.attempt:
        job.attempt = attempt
        # Heartbeats of the previous attempt say nothing about this one.
        job.last_heartbeat_at = None
        append_event(session, job, "attempt", "worker", f"attempt {attempt}", {"attempt": attempt})
    # A retried grant of the current attempt may bring the same output again, never another:
    # the worker computes it from the job and attempt alone.
    job.attempt_output = output.model_dump()
    return AttemptGrant(
        attempt=attempt,
        callback_token=callback_token(settings, job, attempt),
        project_slug=await project_slug(session, job),
        priority=priority_name(job.priority),
    )


async def record_tracking(
    session: AsyncSession, job_id: str, body: TrackingUpdate, link_base: str | None
) -> Job:
    """Merge the worker's tracking info into the job; the run's link is built here, from the
    address users reach MLflow at (which the worker may not know)."""
    job = await lock_job(session, job_id)
    tracking = {**(job.tracking or {}), **body.model_dump(exclude_none=True)}
    experiment = tracking.get("mlflow_experiment_id")
    if link_base and experiment:
        tracking["mlflow_run_url"] = (
            f"{link_base}/#/experiments/{experiment}/runs/{tracking['mlflow_run_id']}"
        )
    # A new dict: the JSON column only notices assignment, not changes inside it.
    job.tracking = tracking
    return job


async def job_by_id(session: AsyncSession, job_id: str) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def project_slug(session: AsyncSession, job: Job) -> str:
    """The slug of the job's project: what the worker's settings name projects by."""
    slug = await session.scalar(select(Project.slug).where(Project.id == job.project_id))
    if slug is None:  # the foreign key (ondelete RESTRICT) keeps this from happening
        raise JobNotFound(job.id)
    return slug


async def job_for_worker(session: AsyncSession, job_id: str) -> InternalJobRead:
    """The job whoever owns it, with its project's slug and its attempt's output."""
    job = await job_by_id(session, job_id)
    public = JobRead.model_validate(job).model_dump()
    return InternalJobRead(
        **public,
        project_slug=await project_slug(session, job),
        attempt_output=job.attempt_output,
    )


async def liveness(session: AsyncSession, job_id: str) -> Liveness:
    job = await session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    state = JobState(job.state)
    return Liveness(
        state=state,
        attempt=job.attempt,
        last_heartbeat_at=job.last_heartbeat_at,
        done=state.terminal,
    )


async def latest_checkpoint(session: AsyncSession, job_id: str) -> LatestCheckpoint:
    """Where a new attempt resumes: the newest `checkpoint_saved` event a trainer sent.

    Only trainer-sent events count (a worker or API event of that type is not a file the
    trainer wrote), and only those naming a path with its size and SHA-256, which the new
    attempt checks before it loads the file.
    """
    await job_by_id(session, job_id)
    rows = await session.execute(
        select(JobEvent)
        .where(
            JobEvent.job_id == job_id,
            JobEvent.type == CHECKPOINT_SAVED,
            JobEvent.source == "trainer",
        )
        .order_by(JobEvent.seq.desc())
        .limit(20)
    )
    for event in rows.scalars():
        data = event.data or {}
        path = data.get("path")
        fingerprint = checkpoint_fingerprint(data)
        # Only what the callbacks accepted (confined, with its size and hash) is resumable:
        # an event stored before those checks is not.
        if isinstance(path, str) and path and fingerprint is not None:
            epoch, attempt = data.get("epoch"), data.get("attempt")
            size, sha256 = fingerprint
            return LatestCheckpoint(
                checkpoint=Checkpoint(
                    path=path,
                    epoch=epoch if isinstance(epoch, int) else None,
                    attempt=attempt if isinstance(attempt, int) else None,
                    seq=event.seq,
                    size=size,
                    sha256=sha256,
                )
            )
    return LatestCheckpoint(checkpoint=None)
