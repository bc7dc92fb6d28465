"""Admission against the database: load what the ledger needs, record what it decides.

A validated job asks (`request_admission`, the workflow's activity through the internal API);
when something frees capacity, `admit_waiting` runs the ledger over the queue again. Either way
one pass at a time decides (PostgreSQL: a transaction-scoped advisory lock; SQLite: every
transaction already holds the write lock), so two passes never hand out the same GPU. A job
holds its GPUs or CPU slot from `admitted_at` until it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.capacity_store import current_capacity
from trainyard.admission.ledger import Holding, Quota, Resources, Verdict, Waiting, decide
from trainyard.auth.models import Project
from trainyard.core.db import utcnow
from trainyard.jobs.events import lock_job, transition
from trainyard.jobs.models import Job
from trainyard_workflows.capacity import Capacity, never_fits
from trainyard_workflows.internal_api import AdmissionAnswer
from trainyard_workflows.job_states import TERMINAL_STATES, JobState

# Any constant shared by every API process: the key of the advisory lock admission passes take.
_ADMISSION_LOCK = 22_0001
# Until a worker reports what the platform has, hardware limits nothing (quotas still apply).
_UNKNOWN = Resources(gpus=1_000_000, cpu_slots=1_000_000)
_UNFINISHED = [state.value for state in JobState if state not in TERMINAL_STATES]
# States a job holds capacity in even without `admitted_at`: workflows started before
# admission existed go from validation straight to STARTING.
_RUNNING_STATES = (JobState.STARTING.value, JobState.RUNNING.value)


@dataclass(frozen=True)
class PassResult:
    verdicts: list[Verdict]
    # Admitted by this pass: their workflows are told (orchestration.signal_admitted).
    admitted: list[str]


async def request_admission(
    session: AsyncSession, job_id: str
) -> tuple[AdmissionAnswer, list[str]]:
    """The job's answer, and the other jobs this pass admitted (to be signalled after commit).

    Admitted at once when it fits; else QUEUED (its `state` event says why). Refused, without
    a state change, when it can never fit here (the workflow fails it with that sentence).
    """
    await _one_pass_at_a_time(session)
    job = await lock_job(session, job_id)
    state = JobState(job.state)
    if state.terminal or job.admitted_at is not None:
        return AdmissionAnswer(admitted=not state.terminal, state=state), []
    capacity = await current_capacity(session)
    refused = never_fits(capacity, job.gpus) if capacity is not None else None
    if refused is not None:
        return AdmissionAnswer(admitted=False, state=state, refused=refused), []
    result = await _pass(session, capacity, also=job)
    verdict = next(v for v in result.verdicts if v.job_id == job.id)
    others = [admitted for admitted in result.admitted if admitted != job.id]
    if verdict.admitted:
        return AdmissionAnswer(admitted=True, state=JobState(job.state)), others
    transition(session, job, JobState.QUEUED, "api", verdict.reason)
    answer = AdmissionAnswer(
        admitted=False, state=JobState.QUEUED, position=verdict.position, reason=verdict.reason
    )
    return answer, others


async def admit_waiting(session: AsyncSession) -> PassResult:
    """Run the ledger over the queue (something ended, or capacity or quotas changed)."""
    await _one_pass_at_a_time(session)
    return await _pass(session, await current_capacity(session))


async def queue_verdicts(session: AsyncSession) -> dict[str, Verdict]:
    """Why each queued job waits now (position, GPUs ahead, what holds it); nothing stored."""
    capacity = await current_capacity(session)
    holding, waiting, quotas = await _ledger_inputs(session, also=None)
    verdicts = decide(_resources(capacity), holding, waiting, quotas, now=time.time())
    return {verdict.job_id: verdict for verdict in verdicts}


async def _pass(
    session: AsyncSession, capacity: Capacity | None, also: Job | None = None
) -> PassResult:
    holding, waiting, quotas = await _ledger_inputs(session, also)
    verdicts = decide(_resources(capacity), holding, waiting, quotas, now=time.time())
    admitted = [verdict.job_id for verdict in verdicts if verdict.admitted]
    if admitted:
        now = utcnow()
        jobs = (await session.execute(select(Job).where(Job.id.in_(admitted)))).scalars()
        for job in jobs:
            job.admitted_at = now
    return PassResult(verdicts, admitted)


def _resources(capacity: Capacity | None) -> Resources:
    if capacity is None:
        return _UNKNOWN
    return Resources(gpus=capacity.gpus, cpu_slots=capacity.cpu_slots)


async def _ledger_inputs(
    session: AsyncSession, also: Job | None
) -> tuple[list[Holding], list[Waiting], dict[str, Quota]]:
    query = select(
        Job.id, Job.project_id, Job.gpus, Job.priority, Job.created_at, Job.state, Job.admitted_at
    ).where(
        Job.state.in_(_UNFINISHED),
        or_(
            Job.admitted_at.is_not(None),
            Job.state.in_((JobState.QUEUED.value, *_RUNNING_STATES)),
        ),
    )
    holding: list[Holding] = []
    waiting: list[Waiting] = []
    for job_id, project_id, gpus, priority, created_at, state, admitted_at in await session.execute(
        query
    ):
        if admitted_at is not None or state in _RUNNING_STATES:
            holding.append(Holding(job_id, project_id, gpus))
        elif also is None or job_id != also.id:
            waiting.append(Waiting(job_id, project_id, gpus, priority, created_at.timestamp()))
    if also is not None:
        waiting.append(
            Waiting(also.id, also.project_id, also.gpus, also.priority, also.created_at.timestamp())
        )
    return holding, waiting, await _quotas(session, {job.project_id for job in waiting})


async def _quotas(session: AsyncSession, projects: set[str]) -> dict[str, Quota]:
    if not projects:
        return {}
    rows = await session.execute(
        select(Project.id, Project.quota_gpus, Project.quota_runs).where(Project.id.in_(projects))
    )
    return {
        project_id: Quota(gpus=gpus, runs=runs)
        for project_id, gpus, runs in rows
        if gpus is not None or runs is not None
    }


async def _one_pass_at_a_time(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADMISSION_LOCK})
