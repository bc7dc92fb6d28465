"""Starting and cancelling jobs' workflows outside every database transaction.

A job's row commits first; then its workflow starts (its id comes from the job id, so a second
start is a no-op). A cancel is recorded first; then it is delivered to the workflow. What a
Temporal outage or a crash between the commit and the call leaves undone, the sweep does: each
API process runs it at start-up and every `workflow_sweep_interval_s` (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.core.db import Database, after_commit, utcnow
from trainyard.core.settings import BackendSettings
from trainyard.core.temporal import TemporalGateway, TemporalUnavailable
from trainyard.jobs.events import append_event, lock_job, transition
from trainyard.jobs.models import Job
from trainyard.jobs.orchestration import cancel_training, start_training, training_input
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.job_states import TERMINAL_STATES, JobState
from trainyard_workflows.telemetry.tracing import attached, context_from_traceparent

logger = logging.getLogger(__name__)

# Shown on a job's timeline when its workflow could not be started at submission.
WAITING_EVENT = "waiting_for_workflow"


class WorkflowStarter:
    """The one path by which jobs' workflows are started and cancels delivered."""

    def __init__(self, db: Database, temporal: TemporalGateway, settings: BackendSettings):
        self._db = db
        self._temporal = temporal
        self._settings = settings

    def start_after_commit(self, session: AsyncSession, job: Job) -> None:
        """Start `job`'s workflow once `session` commits (before the response is sent)."""
        training, traceparent = training_input(job, self._settings), job.traceparent

        async def _start() -> None:
            error = await self.start(training, traceparent)
            if error is not None:
                await self._record_waiting(training.job_id, error)

        after_commit(session, _start)

    async def start(
        self, training: TrainingInput, traceparent: str | None = None
    ) -> TemporalUnavailable | None:
        """Start the workflow and mark the job started; the error if Temporal is unreachable.

        The start joins the job's trace (`traceparent`, its submit span) whoever starts it: the
        submit request itself or, later, the sweep; Temporal carries it into the workflow.
        """
        try:
            with attached(context_from_traceparent(traceparent)):
                await start_training(self._temporal, training, self._settings.task_queue)
        except TemporalUnavailable as error:
            logger.warning(
                "workflow of %s not started (the sweep retries): %s", training.job_id, error
            )
            return error
        async with self._db.session() as session:
            await session.execute(
                update(Job)
                .where(Job.id == training.job_id, Job.workflow_started_at.is_(None))
                # Bookkeeping, not a change a client sees: updated_at stays.
                .values(workflow_started_at=utcnow(), updated_at=Job.updated_at)
            )
        return None

    async def deliver_cancel(self, job_id: str) -> None:
        """Cancel the job's workflow; a job with no workflow running any more ends CANCELLED
        here, since nobody else is left to end it. Raises TemporalUnavailable."""
        if await cancel_training(self._temporal, job_id):
            return
        async with self._db.session() as session:
            job = await lock_job(session, job_id)
            if not JobState(job.state).terminal:
                transition(
                    session, job, JobState.CANCELLED, "api", "cancelled (its workflow had ended)"
                )

    async def sweep(self) -> None:
        """Start the workflows of jobs committed without one; deliver cancels again to jobs
        that asked for one and have not ended (a delivered cancel is not repeated by Temporal)."""
        cutoff = utcnow() - timedelta(seconds=self._settings.workflow_start_grace_s)
        async with self._db.session() as session:
            unstarted = (
                await session.execute(
                    select(Job).where(
                        Job.state == JobState.PENDING,
                        Job.workflow_started_at.is_(None),
                        Job.created_at <= cutoff,
                    )
                )
            ).scalars()
            trainings = [
                (training_input(job, self._settings), job.traceparent) for job in unstarted
            ]
            cancelling = (
                await session.execute(
                    select(Job.id).where(
                        Job.cancel_requested.is_(True),
                        Job.state.not_in(TERMINAL_STATES),
                        Job.workflow_started_at.is_not(None),
                    )
                )
            ).scalars()
            cancelling_ids = list(cancelling)
        for training, traceparent in trainings:
            if await self.start(training, traceparent) is not None:
                return  # Temporal is down: the next sweep tries again
        for job_id in cancelling_ids:
            try:
                await self.deliver_cancel(job_id)
            except TemporalUnavailable:
                return

    async def run(self) -> None:
        """Sweep at once, then every `workflow_sweep_interval_s`, until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("the workflow sweep failed; it runs again")
            await asyncio.sleep(self._settings.workflow_sweep_interval_s)

    async def _record_waiting(self, job_id: str, error: TemporalUnavailable) -> None:
        async with self._db.session() as session:
            job = await lock_job(session, job_id)
            if job.state == JobState.PENDING and job.workflow_started_at is None:
                append_event(
                    session,
                    job,
                    WAITING_EVENT,
                    "api",
                    f"the job waits for its workflow to start: {error.message} "
                    "It starts as soon as Temporal answers.",
                )
