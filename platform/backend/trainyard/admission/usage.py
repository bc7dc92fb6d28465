"""GPU-hours a project used in a calendar month (UTC), metered from the jobs' `state` events.

A job uses `gpus` GPUs from each move to RUNNING until its next move elsewhere (a retry, the
end); one still RUNNING counts up to now. Only the part of each interval inside the month
counts, so a run across midnight of the 1st splits between the two months. Validation,
queueing and starting cost nothing: the budget pays for training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.jobs.models import Job, JobEvent
from trainyard_workflows.job_states import TERMINAL_STATES, JobState

_RUNNING = JobState.RUNNING.value
_ENDED = [state.value for state in TERMINAL_STATES]


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def month_of(now: datetime) -> Window:
    """The calendar month (UTC) `now` is in, up to `now`."""
    now = now.astimezone(UTC)
    return Window(datetime(now.year, now.month, 1, tzinfo=UTC), now)


def running_seconds(moves: Sequence[tuple[datetime, str]], window: Window) -> float:
    """Seconds a job spent RUNNING inside `window`, from its state moves (when, to what) in
    order; an interval still open at the last move runs to the window's end."""
    total = 0.0
    since: datetime | None = None
    for at, target in moves:
        if target == _RUNNING:
            since = since or at
        elif since is not None:
            total += _overlap(since, at, window)
            since = None
    if since is not None:
        total += _overlap(since, window.end, window)
    return total


def _overlap(start: datetime, end: datetime, window: Window) -> float:
    return max(0.0, (min(end, window.end) - max(start, window.start)).total_seconds())


def exhausted(budget: float | None, used: float) -> bool:
    """Whether a monthly budget (None: none) is used up."""
    return budget is not None and used >= budget


def gpu_hours(jobs: Iterable[tuple[int, Sequence[tuple[datetime, str]]]], window: Window) -> float:
    """Sum of gpus × hours RUNNING inside `window` over (gpus, moves) pairs."""
    return sum(gpus * running_seconds(moves, window) for gpus, moves in jobs) / 3600.0


async def project_gpu_hours(session: AsyncSession, project_id: str, now: datetime) -> float:
    """GPU-hours `project_id` used this month up to `now`: one query for all its jobs."""
    window = month_of(now)
    query = (
        select(JobEvent.job_id, Job.gpus, JobEvent.created_at, JobEvent.data)
        .join(Job, Job.id == JobEvent.job_id)
        .where(
            Job.project_id == project_id,
            Job.gpus > 0,
            JobEvent.type == "state",
            # A job that ended before the month began used none of it.
            or_(Job.state.not_in(_ENDED), Job.updated_at >= window.start),
        )
        .order_by(JobEvent.job_id, JobEvent.seq)
    )
    moves: dict[str, tuple[int, list[tuple[datetime, str]]]] = {}
    for job_id, gpus, created_at, data in await session.execute(query):
        moves.setdefault(job_id, (gpus, []))[1].append((created_at, str(data.get("to", ""))))
    return gpu_hours(moves.values(), window)
