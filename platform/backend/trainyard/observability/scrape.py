"""The metrics read from the database at each scrape: they describe the platform, not this
process, so every API replica reports the same values (dashboards take `max by ()`).

Three small queries: jobs counted by state and framework (one GROUP BY), the jobs that ever
ran with when they started and ended (two index lookups per job: its first RUNNING event and
its last event), and the RUNNING jobs' latest system metrics and heartbeat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.models import Project
from trainyard.jobs.models import Job, JobEvent
from trainyard_workflows.job_states import TERMINAL_STATES, JobState

# A heartbeat's system metrics carry at most this many GPUs (the contract's bound).
MAX_GPUS = 16


def running_since() -> Any:
    """When the outer query's job first became RUNNING (null if never): the first matching
    event in seq order, found by walking the (job_id, seq) index from the start."""
    return (
        select(JobEvent.created_at)
        .where(
            JobEvent.job_id == Job.id,
            JobEvent.type == "state",
            JobEvent.data["to"].as_string() == JobState.RUNNING.value,
        )
        .order_by(JobEvent.seq)
        .limit(1)
        .scalar_subquery()
    )


def _ended_at() -> Any:
    """When the outer (terminal) job ended: its last event is the terminal `state` event
    (nothing is appended after it, jobs.events.refuse_if_terminal), one index lookup."""
    return (
        select(JobEvent.created_at)
        .where(JobEvent.job_id == Job.id, JobEvent.seq == Job.last_seq)
        .scalar_subquery()
    )


async def database_metrics(session: AsyncSession, now: datetime | None = None) -> list[Metric]:
    """The database-backed metric families, as of `now`."""
    now = now or datetime.now(UTC)
    return [
        await _jobs_by_state(session),
        await _gpu_seconds(session, now),
        *await _running_jobs(session, now),
    ]


async def _jobs_by_state(session: AsyncSession) -> Metric:
    family = GaugeMetricFamily(
        "trainyard_jobs", "Jobs by state and framework.", labels=["state", "framework"]
    )
    rows = await session.execute(
        select(Job.state, Job.framework, func.count()).group_by(Job.state, Job.framework)
    )
    for state, framework, count in rows:
        family.add_metric([state, framework], count)
    return family


async def _gpu_seconds(session: AsyncSession, now: datetime) -> Metric:
    family = CounterMetricFamily(
        "trainyard_project_gpu_seconds",
        "GPUs requested times the time spent RUNNING (running jobs up to now), by project.",
        labels=["project"],
    )
    running_at = running_since().label("running_at")
    ended_at = _ended_at().label("ended_at")
    ran = (
        select(Project.slug, Job.gpus, Job.state, running_at, ended_at)
        .join(Project, Project.id == Job.project_id)
        .where(Job.state.in_([JobState.RUNNING, *TERMINAL_STATES]), Job.gpus > 0)
        .subquery()
    )
    totals: defaultdict[str, float] = defaultdict(float)
    rows = await session.execute(select(ran).where(ran.c.running_at.is_not(None)))
    for project, gpus, state, started, ended in rows:
        end = now if state == JobState.RUNNING or ended is None else ended
        totals[project] += gpus * max(0.0, (end - started).total_seconds())
    for project, seconds in sorted(totals.items()):
        family.add_metric([project], seconds)
    return family


async def _running_jobs(session: AsyncSession, now: datetime) -> Iterator[Metric]:
    utilization = GaugeMetricFamily(
        "trainyard_run_gpu_utilization_ratio",
        "GPU utilisation (0-1) of each RUNNING job's GPUs, from its latest heartbeat.",
        labels=["job_id", "project", "gpu"],
    )
    heartbeat_age = GaugeMetricFamily(
        "trainyard_running_job_heartbeat_age_seconds",
        "The longest time any RUNNING job has gone without a heartbeat (0: none running).",
    )
    rows = await session.execute(
        select(Job.id, Project.slug, Job.progress, Job.last_heartbeat_at, Job.updated_at)
        .join(Project, Project.id == Job.project_id)
        .where(Job.state == JobState.RUNNING)
    )
    oldest = 0.0
    for job_id, project, progress, last_heartbeat_at, updated_at in rows:
        # A new attempt clears last_heartbeat_at: its age counts from that change.
        seen = last_heartbeat_at or updated_at
        oldest = max(oldest, (now - seen).total_seconds())
        for gpu, ratio in _gpu_ratios(progress):
            utilization.add_metric([job_id, project, gpu], ratio)
    heartbeat_age.add_metric([], oldest)
    return iter((utilization, heartbeat_age))


def _gpu_ratios(progress: dict[str, Any] | None) -> Iterator[tuple[str, float]]:
    """(gpu index, utilisation) from progress["system"]["gpus"]; malformed entries skipped
    (the heartbeat schema bounds them, but older rows predate it)."""
    system = (progress or {}).get("system")
    gpus = system.get("gpus") if isinstance(system, dict) else None
    if not isinstance(gpus, list):
        return
    for gpu in gpus[:MAX_GPUS]:
        if not isinstance(gpu, dict):
            continue
        index, ratio = gpu.get("index"), gpu.get("utilization_ratio")
        if isinstance(index, int) and isinstance(ratio, int | float):
            yield str(index), float(ratio)
