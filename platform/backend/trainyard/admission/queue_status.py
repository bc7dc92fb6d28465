"""Why queued, on a job read: each QUEUED job's place, what holds it and an estimated start.

One ledger run per request, however many jobs it reads (`queue_statuses` over a page), and
only when one of them is QUEUED.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.estimate import Holder, estimated_waits
from trainyard.admission.external_queue import external_status
from trainyard.admission.service import QueueView, queue_view
from trainyard.core.db import utcnow
from trainyard.jobs.models import Job
from trainyard.jobs.schemas import QueueStatus
from trainyard_workflows.internal_api import ExternalQueuePlace
from trainyard_workflows.job_states import JobState

# Said of a queued job the ledger would admit now: the next pass (a job's end, a capacity
# report or the workflow's own recheck) starts it.
_FITS_NOW = "it fits now: it starts at the next admission pass"
# Said of one admitted whose workflow has not moved it to STARTING yet.
_ADMITTED = "admitted: it is starting"


async def queue_statuses(session: AsyncSession, jobs: Sequence[Job]) -> dict[str, QueueStatus]:
    """The queue status of each of `jobs` that is QUEUED, by job id."""
    queued = {job.id for job in jobs if job.state == JobState.QUEUED.value}
    if not queued:
        return {}
    # Kueue holds these (admission/external_queue.py): their place is Kueue's, not the ledger's.
    statuses = {
        job.id: external_status(ExternalQueuePlace.model_validate(job.external_queue))
        for job in jobs
        if job.id in queued and job.external_queue is not None
    }
    queued -= statuses.keys()
    if not queued:
        return statuses
    view = await queue_view(session)
    now = utcnow()
    holders = await _holders(session, view, now)
    waits = estimated_waits(view.resources, holders, view.waiting, view.verdicts, view.quotas)
    for verdict in view.verdicts:
        if verdict.job_id not in queued:
            continue
        wait = waits.get(verdict.job_id)
        statuses[verdict.job_id] = QueueStatus(
            position=verdict.position,
            gpus_ahead=verdict.gpus_ahead,
            hold=verdict.hold.value if verdict.hold is not None else "",
            reason=verdict.reason or _FITS_NOW,
            estimated_start=now + timedelta(seconds=wait) if wait is not None else None,
        )
    for job_id in queued - statuses.keys():  # admitted, not yet STARTING
        statuses[job_id] = QueueStatus(
            position=0, gpus_ahead=0, hold="", reason=_ADMITTED, estimated_start=now
        )
    return statuses


async def _holders(session: AsyncSession, view: QueueView, now: datetime) -> list[Holder]:
    """What each holding job holds and how long it should still run: its newest heartbeat's
    ETA less the time since that heartbeat."""
    if not view.holding:
        return []
    rows = await session.execute(
        select(Job.id, Job.progress, Job.last_heartbeat_at).where(
            Job.id.in_([holding.job_id for holding in view.holding])
        )
    )
    remaining: dict[str, float | None] = {}
    for job_id, progress, beat_at in rows:
        eta = (progress or {}).get("eta_s")
        if isinstance(eta, int | float) and beat_at is not None:
            remaining[job_id] = max(0.0, float(eta) - (now - beat_at).total_seconds())
        else:
            remaining[job_id] = None
    return [Holder(h.project_id, h.gpus, remaining.get(h.job_id)) for h in view.holding]
