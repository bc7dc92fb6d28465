"""TrainingWorkflow on the real dev server with scripted activities (same names and types as
the real ones): outcomes that are hard to provoke with a real trainer.

A cancel must end the job CANCELLED and stop its trainer whatever the workflow awaits: the
Temporal SDK hands a workflow cancel that arrives while an activity is awaited over as that
activity's ActivityError, not as CancelledError. An attempt that cannot start (its image cannot
be pulled) fails the job with the reason the watch gives.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from trainyard_workflows.activities.schemas import (
    LaunchTrainerInput,
    ReportStateInput,
    ReportStateResult,
    StopResult,
    StopTrainerInput,
    ValidateDatasetInput,
    WatchResult,
    WatchTrainerInput,
)
from trainyard_workflows.activities.tracking_schemas import (
    FinishTrackingInput,
    StartTrackingInput,
    SyncTrackingInput,
    TrackingRun,
)
from trainyard_workflows.contracts import WORKFLOW_NAME, TrainingInput
from trainyard_workflows.launchers.base import AttemptHandle
from trainyard_workflows.training import TrainingResult, TrainingWorkflow
from trainyard_workflows.validation.report import ValidationReport

# The activity each scenario holds in flight until the workflow is cancelled; sync_tracking
# runs only once tracking started, while the workflow waits on the trainer.
BLOCKING_ACTIVITIES = ("validate_dataset", "start_tracking", "sync_tracking")


async def _block() -> None:
    while True:  # heartbeating, so a cancel reaches activities that have a heartbeat timeout
        activity.heartbeat()
        await asyncio.sleep(0.2)


@dataclass
class ScriptedActivities:
    """Activities that record their calls; `blocking` waits until cancelled (or forever)."""

    blocking: str
    # What watch_trainer returns; None: it blocks like a trainer that keeps training.
    watch_result: WatchResult | None = None
    entered_blocking: asyncio.Event = field(default_factory=asyncio.Event)
    states: list[str] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    finished_tracking: list[str] = field(default_factory=list)

    async def _maybe_block(self, name: str) -> None:
        if name == self.blocking:
            self.entered_blocking.set()
            await _block()

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="report_state")
        async def report_state(request: ReportStateInput) -> ReportStateResult:
            self.states.append(request.state)
            return ReportStateResult(applied=True, state=request.state)

        @activity.defn(name="validate_dataset")
        async def validate_dataset(request: ValidateDatasetInput) -> ValidationReport:
            await self._maybe_block("validate_dataset")
            return ValidationReport(ok=True, format="yolo")

        @activity.defn(name="launch_trainer")
        async def launch_trainer(request: LaunchTrainerInput) -> AttemptHandle:
            return AttemptHandle(
                job_id=request.training.job_id,
                attempt=request.attempt,
                pid=4242,
                output_dir="/nonexistent",
                log_path="/nonexistent/log",
                launched_at=time.time(),
            )

        @activity.defn(name="watch_trainer")
        async def watch_trainer(request: WatchTrainerInput) -> WatchResult:
            if self.watch_result is not None:
                return self.watch_result
            await _block()  # a trainer that keeps training
            return WatchResult(outcome="exited", exit_code=0)

        @activity.defn(name="stop_trainer")
        async def stop_trainer(request: StopTrainerInput) -> StopResult:
            self.stopped.append(request.handle.pid)
            return StopResult(was_running=True, exit_code=143)

        @activity.defn(name="cleanup")
        async def cleanup(request: StopTrainerInput) -> StopResult:
            return StopResult(was_running=False, exit_code=143)

        @activity.defn(name="start_tracking")
        async def start_tracking(request: StartTrackingInput) -> TrackingRun | None:
            await self._maybe_block("start_tracking")
            return TrackingRun(run_id="run-1", experiment_id="1")

        @activity.defn(name="sync_tracking")
        async def sync_tracking(request: SyncTrackingInput) -> None:
            await self._maybe_block("sync_tracking")
            await _block()

        @activity.defn(name="finish_tracking")
        async def finish_tracking(request: FinishTrackingInput) -> None:
            self.finished_tracking.append(request.state)

        return [
            report_state,
            validate_dataset,
            launch_trainer,
            watch_trainer,
            stop_trainer,
            cleanup,
            start_tracking,
            sync_tracking,
            finish_tracking,
        ]


def training_input(job_id: str) -> TrainingInput:
    return TrainingInput(
        job_id=job_id,
        framework="ultralytics",
        model="yolo11n.yaml",
        dataset_uri="file:///nonexistent",
        task="detect",
        epochs=1,
        imgsz=64,
        batch=1,
        gpus=0,
    )


@pytest.fixture(params=BLOCKING_ACTIVITIES)
async def running_workflow(
    request: pytest.FixtureRequest, temporal_env: WorkflowEnvironment
) -> AsyncIterator[tuple[ScriptedActivities, WorkflowHandle[TrainingWorkflow, object]]]:
    scripted = ScriptedActivities(blocking=request.param)
    queue = f"cancel-{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[TrainingWorkflow],
        activities=scripted.activities(),
    ):
        job_id = f"job_{uuid.uuid4().hex}"
        handle: WorkflowHandle[TrainingWorkflow, object] = await temporal_env.client.start_workflow(
            WORKFLOW_NAME,
            training_input(job_id),
            id=f"training-{job_id}",
            task_queue=queue,
        )
        await asyncio.wait_for(scripted.entered_blocking.wait(), timeout=30)
        yield scripted, handle


async def test_a_cancel_ends_the_job_cancelled_whatever_activity_is_in_flight(
    running_workflow: tuple[ScriptedActivities, WorkflowHandle[TrainingWorkflow, object]],
) -> None:
    scripted, handle = running_workflow

    await handle.cancel()

    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=30)
    assert isinstance(failure.value.cause, CancelledError)
    assert scripted.states[-1] == "CANCELLED"
    assert "FAILED" not in scripted.states
    launched = scripted.blocking != "validate_dataset"
    assert scripted.stopped == ([4242] if launched else [])
    tracked = scripted.blocking == "sync_tracking"
    assert scripted.finished_tracking == (["CANCELLED"] if tracked else [])


async def test_an_attempt_that_cannot_start_fails_the_job_with_the_watchs_reason(
    temporal_env: WorkflowEnvironment,
) -> None:
    why = "ImagePullBackOff: Back-off pulling image (for more than 300s)"
    scripted = ScriptedActivities(
        blocking="none", watch_result=WatchResult(outcome="unstartable", exit_code=None, reason=why)
    )
    queue = f"unstartable-{uuid.uuid4().hex}"
    job_id = f"job_{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[TrainingWorkflow],
        activities=scripted.activities(),
    ):
        result = await temporal_env.client.execute_workflow(
            WORKFLOW_NAME,
            training_input(job_id),
            id=f"training-{job_id}",
            task_queue=queue,
            result_type=TrainingResult,
        )

    assert (result.state, result.attempt) == ("FAILED", 1)
    assert result.reason == f"attempt 1 could not start: {why}"
    assert scripted.states[-1] == "FAILED"
