"""A job Kueue holds: the worker's watch says where (its LocalQueue place, the GPUs ahead,
Kueue's reason) and when Kueue admitted it.

With Kueue (the capacity report's `queue` is "kueue"), the platform's ledger admits a job
against quotas and budgets only, and its trainer Job is created suspended: Kueue then decides
when it starts. While Kueue holds it the job is QUEUED (the one move back a preemption makes
too: `judge(..., requeue=True)`) with `external_queue` as its place, read by `queue_status` like
a ledger verdict; once admitted it moves on to STARTING. The attempt must be the job's current
one: an older attempt's watch says nothing about this one.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.ledger import HoldKind
from trainyard.jobs.events import append_event, lock_job, transition
from trainyard.jobs.models import Job
from trainyard.jobs.schemas import QueueStatus
from trainyard_workflows.event_types import QUEUE
from trainyard_workflows.internal_api import ExternalQueuePlace
from trainyard_workflows.job_states import JobState


def external_status(place: ExternalQueuePlace) -> QueueStatus:
    """The job's `queue` while Kueue holds it (Kueue gives no start estimate)."""
    return QueueStatus(
        position=place.position,
        gpus_ahead=place.gpus_ahead,
        hold=HoldKind.KUEUE.value,
        reason=place.reason,
        estimated_start=None,
    )


async def hold_in_external_queue(
    session: AsyncSession, job_id: str, place: ExternalQueuePlace
) -> Job:
    """Kueue holds the job's current attempt at `place`: QUEUED, with a `queue` event whenever
    the place or the reason changed. JobTerminal (409) once the job ended."""
    job = await lock_job(session, job_id)
    # A report read before Kueue let the trainer start, arriving after it reported: stale. (A
    # new attempt of a RUNNING job has no heartbeat yet: start_attempt cleared it.)
    if job.attempt != place.attempt or job.last_heartbeat_at is not None:
        return job
    status = external_status(place)
    transition(session, job, JobState.QUEUED, "worker", place.reason, requeue=True)
    if job.external_queue != place.model_dump():
        job.external_queue = place.model_dump()
        data = status.model_dump(exclude={"estimated_start"})
        append_event(session, job, QUEUE, "worker", place.reason, data)
    return job


async def release_from_external_queue(session: AsyncSession, job_id: str, attempt: int) -> Job:
    """Kueue admitted the job's current attempt: it starts (STARTING, unless its trainer
    already reported and made it RUNNING). JobTerminal (409) once the job ended."""
    job = await lock_job(session, job_id)
    if job.attempt != attempt or job.external_queue is None:
        return job
    job.external_queue = None
    if job.state == JobState.QUEUED.value:
        transition(session, job, JobState.STARTING, "worker", "admitted by Kueue")
    return job
