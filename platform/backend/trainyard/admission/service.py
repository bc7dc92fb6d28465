"""Admission against the database: load what the ledger needs, record what it decides.

A validated job asks (`request_admission`, the workflow's activity through the internal API);
when something frees capacity, `admit_waiting` runs the ledger over the queue again. Either way
one pass at a time decides (PostgreSQL: a transaction-scoped advisory lock; SQLite: every
transaction already holds the write lock), so two passes never hand out the same GPU. A job
holds its GPUs or CPU slot from `admitted_at` until it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.capacity_store import current_capacity
from trainyard.admission.ledger import (
    Holding,
    HoldKind,
    Quota,
    Resources,
    Verdict,
    Waiting,
    decide,
)
from trainyard.admission.preemption import Preemption, Running, preemptions
from trainyard.admission.queue_events import announce_queue
from trainyard.admission.usage import exhausted, project_gpu_hours
from trainyard.auth.models import Project
from trainyard.core.db import utcnow
from trainyard.jobs.events import append_event, lock_job, transition
from trainyard.jobs.models import Job
from trainyard_workflows.capacity import Capacity, never_fits
from trainyard_workflows.event_types import PREEMPTED
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
    # Running jobs told to give way (orchestration.signal_preempt), after commit.
    preempted: list[Preemption] = field(default_factory=list)


@dataclass(frozen=True)
class Wakeups:
    """The workflows to signal once the pass is committed."""

    admitted: list[str]
    preempted: list[Preemption]


async def request_admission(
    session: AsyncSession, job_id: str, preempt: bool = False
) -> tuple[AdmissionAnswer, Wakeups]:
    """The job's answer, and the other jobs this pass admitted or preempted (to be signalled
    after commit). `preempt`: lower-priority running jobs may be told to give way.

    Admitted at once when it fits; else QUEUED (its `state` event says why). Refused, without
    a state change, when it can never fit here (the workflow fails it with that sentence).
    """
    await _one_pass_at_a_time(session)
    job = await lock_job(session, job_id)
    state = JobState(job.state)
    nobody = Wakeups([], [])
    if state.terminal or job.admitted_at is not None:
        return AdmissionAnswer(admitted=not state.terminal, state=state), nobody
    capacity = await current_capacity(session)
    refused = never_fits(capacity, job.gpus) if capacity is not None else None
    if refused is not None:
        return AdmissionAnswer(admitted=False, state=state, refused=refused), nobody
    result = await _pass(session, capacity, also=job, preempt=preempt)
    verdict = next(v for v in result.verdicts if v.job_id == job.id)
    others = Wakeups([other for other in result.admitted if other != job.id], result.preempted)
    if verdict.admitted:
        return AdmissionAnswer(admitted=True, state=JobState(job.state)), others
    if transition(session, job, JobState.QUEUED, "api", verdict.reason):
        await announce_queue(session, [verdict])  # its first place (the pass saw it VALIDATING)
    answer = AdmissionAnswer(
        admitted=False, state=JobState.QUEUED, position=verdict.position, reason=verdict.reason
    )
    return answer, others


async def admit_waiting(session: AsyncSession, preempt: bool = False) -> PassResult:
    """Run the ledger over the queue (something ended, or capacity or quotas changed)."""
    await _one_pass_at_a_time(session)
    return await _pass(session, await current_capacity(session), preempt=preempt)


async def requeue_preempted(session: AsyncSession, job_id: str, attempt: int, by: str) -> Job:
    """The preempted job's trainer has stopped: back to QUEUED (its `state` event and a
    `preempted` event name `by`), holding nothing. Repeating it is a no-op; 409 once the job
    ended; an older attempt than the job's changes nothing."""
    job = await lock_job(session, job_id)
    if job.attempt != attempt:
        return job
    reason = f"preempted by {by}: waits to resume from its checkpoint"
    if transition(session, job, JobState.QUEUED, "worker", reason, requeue=True):
        message = f"attempt {attempt} gave way to {by}"
        append_event(session, job, PREEMPTED, "worker", message, {"by": by, "attempt": attempt})
    job.admitted_at = None
    job.preempted_by = None
    job.external_queue = None
    return job


@dataclass(frozen=True)
class QueueView:
    """One ledger run over the queue as it stands, and what it ran on (nothing stored)."""

    resources: Resources
    holding: list[Holding]
    waiting: list[Waiting]
    quotas: dict[str, Quota]
    verdicts: list[Verdict]  # in queue order


async def queue_view(session: AsyncSession) -> QueueView:
    """The queue now: what each job holds, why each queued job waits (queue_status.py)."""
    resources = _resources(await current_capacity(session))
    holding, waiting, quotas = await _ledger_inputs(session, also=None)
    verdicts = decide(resources, holding, waiting, quotas, now=time.time())
    return QueueView(resources, holding, waiting, quotas, verdicts)


async def queue_verdicts(session: AsyncSession) -> dict[str, Verdict]:
    """Why each queued job waits now (position, GPUs ahead, what holds it); nothing stored."""
    return {verdict.job_id: verdict for verdict in (await queue_view(session)).verdicts}


async def _pass(
    session: AsyncSession, capacity: Capacity | None, also: Job | None = None, preempt: bool = False
) -> PassResult:
    holding, waiting, quotas = await _ledger_inputs(session, also)
    resources = _resources(capacity)
    verdicts = decide(resources, holding, waiting, quotas, now=time.time())
    admitted = [verdict.job_id for verdict in verdicts if verdict.admitted]
    if admitted:
        now = utcnow()
        jobs = (await session.execute(select(Job).where(Job.id.in_(admitted)))).scalars()
        for job in jobs:
            job.admitted_at = now
    # `also` is not QUEUED yet on its first ask: request_admission announces it once it is.
    first_ask = also.id if also is not None and also.state != JobState.QUEUED else None
    await announce_queue(session, [v for v in verdicts if v.job_id != first_ask])
    chosen: list[Preemption] = []
    if preempt and any(verdict.hold is HoldKind.CAPACITY for verdict in verdicts):
        by_id = {job.job_id: job for job in waiting}
        chosen = preemptions(resources, await _running(session), verdicts, by_id)
        for preemption in chosen:
            victim = await session.get(Job, preemption.victim)
            assert victim is not None  # read in this transaction, under the admission lock
            victim.preempted_by = preemption.preemptor
    return PassResult(verdicts, admitted, chosen)


async def _running(session: AsyncSession) -> list[Running]:
    """The jobs that hold capacity, as preemption weighs them."""
    query = select(Job.id, Job.gpus, Job.priority, Job.admitted_at, Job.preempted_by).where(
        Job.state.in_(_UNFINISHED),
        or_(Job.admitted_at.is_not(None), Job.state.in_(_RUNNING_STATES)),
    )
    return [
        Running(job_id, gpus, priority, admitted_at.timestamp() if admitted_at else 0.0, bool(by))
        for job_id, gpus, priority, admitted_at, by in await session.execute(query)
    ]


def _resources(capacity: Capacity | None) -> Resources:
    # With Kueue, Kueue admits against the cluster (admission/external_queue.py): the ledger
    # keeps to quotas and budgets.
    if capacity is None or capacity.queue == "kueue":
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
        select(
            Project.id, Project.quota_gpus, Project.quota_runs, Project.gpu_hours_per_month
        ).where(Project.id.in_(projects))
    )
    quotas: dict[str, Quota] = {}
    for project_id, gpus, runs, budget in rows.all():
        # Metered only where a budget is set: one query per such project.
        spent = budget is not None and exhausted(
            budget, await project_gpu_hours(session, project_id, utcnow())
        )
        if gpus is not None or runs is not None or spent:
            quotas[project_id] = Quota(gpus=gpus, runs=runs, budget_exhausted=spent)
    return quotas


async def _one_pass_at_a_time(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADMISSION_LOCK})
