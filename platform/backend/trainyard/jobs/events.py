"""The job timeline: appending events and state transitions under the job's row lock.

Every change to a job goes through here so that each one is an event with the next `seq`,
stored in the same transaction as the change and published only after it commits.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.core.db import queue_event, utcnow
from trainyard.jobs.errors import JobNotFound, JobTerminal, TransitionRefused
from trainyard.jobs.models import Job, JobEvent
from trainyard.jobs.schemas import EventRead
from trainyard_workflows.job_states import JobState, TransitionVerdict, judge

Source = str  # "api" | "worker" | "trainer"


class JobView(Protocol):
    """What the rules read of a job: the ORM row, or the heartbeat ingest's row in memory."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def held_externally(self) -> bool: ...


async def lock_job(session: AsyncSession, job_id: str) -> Job:
    """Load the job for update: concurrent writers of the same job queue behind this one.

    (PostgreSQL takes a row lock; SQLite transactions already hold the write lock, see core.db.)
    """
    query = (
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    job = (await session.execute(query)).scalar_one_or_none()
    if job is None:
        raise JobNotFound(job_id)
    return job


def refuse_if_terminal(job: JobView) -> None:
    """The rule for anything appended to a job's timeline (a trainer's callback, a worker's
    event, a new attempt): nothing after the terminal state. The stream ends with that state,
    so a later event would be stored but never shown (a cancelled job's validation report
    landed 8 s after CANCELLED); JobTerminal answers 409."""
    if JobState(job.state).terminal:
        raise JobTerminal(job.id, job.state)


def event_payload(event: JobEvent) -> dict[str, Any]:
    """The event as the API and the stream show it, JSON-ready."""
    return EventRead.model_validate(event).model_dump(mode="json")


def append_event(
    session: AsyncSession,
    job: Job,
    type_: str,
    source: Source,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Add the job's next event. The caller holds the job from `lock_job` (or just created it)."""
    now = utcnow()
    job.last_seq += 1
    job.updated_at = now
    event = JobEvent(
        job_id=job.id,
        seq=job.last_seq,
        type=type_,
        source=source,
        message=message,
        data=data or {},
        created_at=now,
    )
    session.add(event)
    queue_event(session, job.id, event_payload(event))
    return event


def moves_to(job: JobView, target: JobState, requeue: bool = False) -> bool:
    """The transition rule, for every writer: True if `job` may move to `target` now, False if
    it is there already (a retried request: nothing to do). Raises JobTerminal once the job
    ended and TransitionRefused for a backwards move (but a preemption's `requeue`)."""
    current = JobState(job.state)
    verdict = judge(current, target, requeue)
    if verdict is TransitionVerdict.ALREADY:
        return False
    if verdict is TransitionVerdict.TERMINAL:
        raise JobTerminal(job.id, current)
    if verdict is TransitionVerdict.BACKWARDS:
        raise TransitionRefused(job.id, current, target)
    return True


def state_event(previous: str, target: str, reason: str | None) -> tuple[str, dict[str, Any]]:
    """The `state` event of a transition: its message and data."""
    message = f"{previous} → {target}" + (f": {reason}" if reason else "")
    return message, {"from": previous, "to": target, "reason": reason}


def transition(
    session: AsyncSession,
    job: Job,
    target: JobState,
    source: Source,
    reason: str | None = None,
    requeue: bool = False,
) -> bool:
    """Move the job forward to `target` (or, preempted, back to QUEUED: `requeue`) and record
    the `state` event.

    Returns False (and changes nothing) when the job is already in `target`, so retried
    requests are harmless. Raises JobTerminal once the job ended and TransitionRefused for a
    backwards move.
    """
    if not moves_to(job, target, requeue):
        return False
    current = job.state
    job.state = target
    if reason is not None:
        job.reason = reason
    message, data = state_event(current, target, reason)
    append_event(session, job, "state", source, message, data)
    return True
