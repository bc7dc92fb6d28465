"""A project's quota: what platform admins set, what its members read (usage against it).

Setting a quota is audited and starts an admission pass once committed: a raised limit may
admit jobs that wait.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.priorities import PriorityName
from trainyard.admission.schemas import QuotaRead, QuotaRemaining, QuotaSet, QuotaUsage
from trainyard.admission.trigger import AdmissionTrigger
from trainyard.admission.usage import exhausted, project_gpu_hours
from trainyard.auth import audit
from trainyard.auth.models import Project
from trainyard.auth.principal import Access
from trainyard.core.db import AfterCommit, after_commit, utcnow
from trainyard.jobs.models import Job
from trainyard_workflows.job_states import TERMINAL_STATES, JobState

_UNFINISHED = [state.value for state in JobState if state not in TERMINAL_STATES]
# Jobs started before admission existed hold what they run on without `admitted_at`.
_RUNNING_STATES = (JobState.STARTING.value, JobState.RUNNING.value)


def quota_of(project: Project) -> QuotaSet:
    max_priority: PriorityName = project.max_priority  # type: ignore[assignment]
    return QuotaSet(
        gpus=project.quota_gpus,
        runs=project.quota_runs,
        gpu_hours_per_month=project.gpu_hours_per_month,
        max_priority=max_priority,
    )


async def read_quota(session: AsyncSession, project: Project) -> QuotaRead:
    """The quota, what the project holds now and its GPU-hours this month."""
    quota = quota_of(project)
    gpus, runs = await _held(session, project.id)
    used = await project_gpu_hours(session, project.id, utcnow())
    return QuotaRead(
        project=project.slug,
        quota=quota,
        usage=QuotaUsage(gpus=gpus, runs=runs, gpu_hours_this_month=round(used, 4)),
        remaining=QuotaRemaining(
            gpus=None if quota.gpus is None else max(0, quota.gpus - gpus),
            runs=None if quota.runs is None else max(0, quota.runs - runs),
            gpu_hours_this_month=(
                None
                if quota.gpu_hours_per_month is None
                else round(max(0.0, quota.gpu_hours_per_month - used), 4)
            ),
        ),
        budget_exhausted=exhausted(quota.gpu_hours_per_month, used),
    )


async def set_quota(
    session: AsyncSession,
    access: Access,
    project: Project,
    body: QuotaSet,
    trigger: AdmissionTrigger,
) -> QuotaRead:
    """Replace the project's quota (the caller is a platform admin: the router checks)."""
    project.quota_gpus = body.gpus
    project.quota_runs = body.runs
    project.gpu_hours_per_month = body.gpu_hours_per_month
    project.max_priority = body.max_priority
    audit.record(
        session,
        access.principal,
        "project.quota",
        project_id=project.id,
        target=project.slug,
        detail=body.model_dump(),
    )
    await session.flush()
    after_commit(session, _kick(trigger))
    return await read_quota(session, project)


async def _held(session: AsyncSession, project_id: str) -> tuple[int, int]:
    """GPUs and runs the project's admitted, unfinished jobs hold."""
    query = select(func.coalesce(func.sum(Job.gpus), 0), func.count()).where(
        Job.project_id == project_id,
        Job.state.in_(_UNFINISHED),
        or_(Job.admitted_at.is_not(None), Job.state.in_(_RUNNING_STATES)),
    )
    gpus, runs = (await session.execute(query)).one()
    return int(gpus), int(runs)


def _kick(trigger: AdmissionTrigger) -> AfterCommit:
    async def kick() -> None:
        trigger.kick()

    return kick
