"""The TrainingWorkflow's side of a job's MLflow run (deterministic workflow code: every MLflow
call is an activity, activities/tracking_activities.py).

Each attempt finds the job's run again (or creates it) and syncs its epoch metrics while it
trains; the run is closed once the job is terminal. Tracking never fails a job: a run that
cannot be started leaves the job untracked, one that cannot be finished is logged.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

from trainyard_workflows import activity_options as options
from trainyard_workflows.job_states import TERMINAL_STATES

with workflow.unsafe.imports_passed_through():
    from trainyard_workflows.activities.tracking_activities import TrackingActivities
    from trainyard_workflows.activities.tracking_schemas import (
        FinishTrackingInput,
        StartTrackingInput,
        SyncTrackingInput,
        TrackingRun,
    )


class JobTracking:
    """The job's MLflow run as the workflow holds it: None until an attempt started it."""

    def __init__(self) -> None:
        self._run: TrackingRun | None = None

    async def follow_attempt(
        self, job_id: str, attempt: int
    ) -> workflow.ActivityHandle[None] | None:
        """Start (or find again) the run for `attempt`, then its metrics sync, which runs until
        cancelled; None when the job is not tracked."""
        self._run = await self._start(job_id, attempt)
        if self._run is None:
            return None
        return workflow.start_activity_method(
            TrackingActivities.sync_tracking,
            SyncTrackingInput(job_id, self._run.run_id),
            start_to_close_timeout=options.WATCH_TIMEOUT,
            heartbeat_timeout=options.WATCH_HEARTBEAT_TIMEOUT,
            retry_policy=options.FEW_RETRIES,
        )

    async def finish(self, job_id: str, state: str) -> None:
        """Close the run once the job is terminal (a no-op for untracked jobs)."""
        run, self._run = self._run, None
        if run is None or state not in TERMINAL_STATES:
            return
        try:
            await workflow.execute_activity_method(
                TrackingActivities.finish_tracking,
                FinishTrackingInput(job_id, run.run_id, state),
                start_to_close_timeout=options.TRACKING_FINISH_TIMEOUT,
                heartbeat_timeout=options.WATCH_HEARTBEAT_TIMEOUT,
                retry_policy=options.FEW_RETRIES,
            )
        except ActivityError as error:
            workflow.logger.warning("job %s: tracking not finished: %s", job_id, error)

    @staticmethod
    async def _start(job_id: str, attempt: int) -> TrackingRun | None:
        try:
            run: TrackingRun | None = await workflow.execute_activity_method(
                TrackingActivities.start_tracking,
                StartTrackingInput(job_id, attempt),
                start_to_close_timeout=options.TRACKING_START_TIMEOUT,
                retry_policy=options.FEW_RETRIES,
            )
        except ActivityError as error:
            if workflow.cancellation_reason() is not None:
                raise  # a cancelled job, not a tracking failure: the workflow winds it down
            workflow.logger.warning("job %s: tracking not started: %s", job_id, error)
            return None
        return run
