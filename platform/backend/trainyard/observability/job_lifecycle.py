"""Submissions, queue wait, run duration and finished jobs, observed from committed events.

Every state change of a job is a `state` event committed with it, and every committed event
passes through `Database.publish` once, whichever path made it (the API, the worker's
transitions, a trainer's `done`, the heartbeat ingest's first RUNNING). Observing there counts
each change once and only once it is durable: a rolled-back transition, or a heartbeat round
decided again, never counts. A job reaches a terminal state once, and the queue wait counts its
first RUNNING only (a job preempted back to QUEUED runs again later), so each job is observed
once per histogram. A submission is its `submitted` event (an Idempotency-Key replay makes none).

What the event lacks (the framework, the submission time, when it started running) is read
with one small query per state change that matters: a few per job, never per heartbeat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from trainyard.core.bus import Event
from trainyard.jobs.models import Job, JobEvent
from trainyard.observability.metrics import (
    JOB_QUEUE_WAIT_SECONDS,
    JOB_RUN_DURATION_SECONDS,
    JOB_SUBMISSIONS,
    JOBS_FINISHED,
)
from trainyard.observability.scrape import running_since
from trainyard_workflows.job_states import TERMINAL_STATES, JobState
from trainyard_workflows.telemetry.reasons import finish_reason

logger = logging.getLogger(__name__)


class JobLifecycleMetrics:
    """`Database`'s observer of committed events (its `observe` argument)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self, events: Sequence[tuple[str, Event]]) -> None:
        for job_id, event in events:
            data = event.get("data") or {}
            if event.get("type") == "submitted":
                JOB_SUBMISSIONS.labels(str(data.get("framework"))).inc()
            if event.get("type") != "state":
                continue
            target = data.get("to")
            if target == JobState.RUNNING or target in TERMINAL_STATES:
                await self._observe(job_id, str(target), event, data.get("reason"))

    async def _observe(self, job_id: str, target: str, event: Event, reason: str | None) -> None:
        at = datetime.fromisoformat(str(event["created_at"]))
        query = select(Job.framework, Job.created_at, running_since().label("running_at")).where(
            Job.id == job_id
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).one_or_none()
        if row is None:
            return
        framework, created_at, running_at = row
        if target == JobState.RUNNING:
            # A job preempted back to the queue runs again later: its wait was the first one.
            if await self._first_running_seq(job_id) == event.get("seq"):
                JOB_QUEUE_WAIT_SECONDS.labels(framework).observe(_seconds(created_at, at))
            return
        if running_at is not None:
            JOB_RUN_DURATION_SECONDS.labels(framework, target).observe(_seconds(running_at, at))
        label = finish_reason(target, reason, event.get("source"))
        JOBS_FINISHED.labels(framework, target, label).inc()

    async def _first_running_seq(self, job_id: str) -> int | None:
        query = (
            select(JobEvent.seq)
            .where(
                JobEvent.job_id == job_id,
                JobEvent.type == "state",
                JobEvent.data["to"].as_string() == JobState.RUNNING.value,
            )
            .order_by(JobEvent.seq)
            .limit(1)
        )
        async with self._engine.connect() as connection:
            seq: int | None = (await connection.execute(query)).scalar_one_or_none()
        return seq


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
