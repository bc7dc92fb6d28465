"""`queue` events: a queued job's stream says when its place or the reason it waits changed.

After each admission pass, every still-queued job whose position or reason differs from its
newest `queue` event gets a new one; a pass that changes nothing writes nothing (a busy queue
would otherwise flood every watcher with the same line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.ledger import Verdict
from trainyard.jobs.events import append_event
from trainyard.jobs.models import Job, JobEvent
from trainyard_workflows.event_types import QUEUE
from trainyard_workflows.job_states import JobState


def queue_data(verdict: Verdict) -> dict[str, Any]:
    """A `queue` event's data."""
    return {
        "position": verdict.position,
        "gpus_ahead": verdict.gpus_ahead,
        "hold": verdict.hold.value if verdict.hold is not None else "",
        "reason": verdict.reason,
    }


async def announce_queue(session: AsyncSession, verdicts: Sequence[Verdict]) -> list[str]:
    """Append a `queue` event to each of these QUEUED jobs whose position or reason changed
    since its newest one (or that has none); the ids of those that got one. Admitted verdicts
    and jobs no longer QUEUED (cancelled meanwhile) are skipped."""
    held = {verdict.job_id: verdict for verdict in verdicts if not verdict.admitted}
    if not held:
        return []
    last = await _last_queue_data(session, list(held))
    changed = sorted(job_id for job_id, v in held.items() if _moved(last.get(job_id), v))
    if not changed:
        return []
    # Locked in id order: two writers of the same jobs never wait on each other in a cycle.
    query = (
        select(Job)
        .where(Job.id.in_(changed))
        .order_by(Job.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    announced: list[str] = []
    for job in (await session.execute(query)).scalars():
        if job.state != JobState.QUEUED.value:
            continue
        verdict = held[job.id]
        append_event(session, job, QUEUE, "api", verdict.reason, queue_data(verdict))
        announced.append(job.id)
    return announced


def _moved(last: dict[str, Any] | None, verdict: Verdict) -> bool:
    if last is None:
        return True
    return last.get("position") != verdict.position or last.get("reason") != verdict.reason


async def _last_queue_data(session: AsyncSession, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    newest = (
        select(JobEvent.job_id, func.max(JobEvent.seq).label("seq"))
        .where(JobEvent.job_id.in_(job_ids), JobEvent.type == QUEUE)
        .group_by(JobEvent.job_id)
        .subquery()
    )
    rows = await session.execute(
        select(JobEvent.job_id, JobEvent.data).join(
            newest, (JobEvent.job_id == newest.c.job_id) & (JobEvent.seq == newest.c.seq)
        )
    )
    return {job_id: dict(data or {}) for job_id, data in rows}
