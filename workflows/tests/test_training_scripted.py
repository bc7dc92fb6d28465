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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from trainyard_workflows.activities.schemas import (
    AdmissionResult,
    LaunchTrainerInput,
    ReportStateInput,
    ReportStateResult,
    RequeueInput,
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
from trainyard_workflows.contracts import (
    ADMITTED_SIGNAL,
    PREEMPT_SIGNAL,
    TRAINER_DONE_SIGNAL,
    WORKFLOW_NAME,
    Preempt,
    TrainerDone,
    TrainingInput,
)
from trainyard_workflows.job_states import DONE_STATUS_TO_STATE
from trainyard_workflows.launchers.base import AttemptHandle
from trainyard_workflows.outcomes import TrainingResult
from trainyard_workflows.training import TrainingWorkflow
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
    # Per attempt (1, 2, ...), overriding watch_result: None blocks.
    watch_results: list[WatchResult | None] | None = None
    launches: list[LaunchTrainerInput] = field(default_factory=list)
    launched: asyncio.Event = field(default_factory=asyncio.Event)
    cleaned: list[int] = field(default_factory=list)
    entered_blocking: asyncio.Event = field(default_factory=asyncio.Event)
    # What the workflow asked report_state for (None: the job's state, no transition).
    states: list[str | None] = field(default_factory=list)
    # The state the backend ended the job in when it stored a trainer's `done`.
    decided: str | None = None
    # Called by stop_trainer with the workflow's id: a trainer answering the stop (its `done`).
    on_stop: Callable[[str], Awaitable[None]] | None = None
    stopped: list[int] = field(default_factory=list)
    finished_tracking: list[str] = field(default_factory=list)
    # What request_admission answers, in turn; once they are used up: admitted.
    admission: list[AdmissionResult] = field(default_factory=list)
    admission_requests: int = 0
    asked_admission: asyncio.Event = field(default_factory=asyncio.Event)
    asked_again: asyncio.Event = field(default_factory=asyncio.Event)
    requeued: list[tuple[int, str]] = field(default_factory=list)

    async def _maybe_block(self, name: str) -> None:
        if name == self.blocking:
            self.entered_blocking.set()
            await _block()

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="request_admission")
        async def request_admission(job_id: str) -> AdmissionResult:
            self.admission_requests += 1
            (self.asked_again if self.asked_admission.is_set() else self.asked_admission).set()
            if self.admission:
                return self.admission.pop(0)
            return AdmissionResult(admitted=True, state="VALIDATING")

        @activity.defn(name="requeue_preempted")
        async def requeue_preempted(request: RequeueInput) -> ReportStateResult:
            self.requeued.append((request.attempt, request.by))
            self.states.append("QUEUED")
            return ReportStateResult(applied=True, state="QUEUED")

        @activity.defn(name="report_state")
        async def report_state(request: ReportStateInput) -> ReportStateResult:
            self.states.append(request.state)
            if request.state is None:
                assert self.decided is not None, "the workflow asked for a state nobody decided"
                return ReportStateResult(applied=False, state=self.decided)
            return ReportStateResult(applied=True, state=request.state)

        @activity.defn(name="validate_dataset")
        async def validate_dataset(request: ValidateDatasetInput) -> ValidationReport:
            await self._maybe_block("validate_dataset")
            return ValidationReport(ok=True, format="yolo")

        @activity.defn(name="launch_trainer")
        async def launch_trainer(request: LaunchTrainerInput) -> AttemptHandle:
            self.launches.append(request)
            self.launched.set()
            return AttemptHandle(
                job_id=request.training.job_id,
                attempt=request.attempt,
                pid=4241 + request.attempt,
                output_dir="/nonexistent",
                log_path="/nonexistent/log",
                launched_at=time.time(),
            )

        @activity.defn(name="watch_trainer")
        async def watch_trainer(request: WatchTrainerInput) -> WatchResult:
            if self.watch_results is not None:
                scripted = self.watch_results[request.handle.attempt - 1]
                if scripted is not None:
                    return scripted
            elif self.watch_result is not None:
                return self.watch_result
            await _block()  # a trainer that keeps training
            return WatchResult(outcome="exited", exit_code=0)

        @activity.defn(name="stop_trainer")
        async def stop_trainer(request: StopTrainerInput) -> StopResult:
            self.stopped.append(request.handle.pid)
            workflow_id = activity.info().workflow_id
            if self.on_stop is not None and workflow_id is not None:
                await self.on_stop(workflow_id)
            return StopResult(was_running=True, exit_code=143)

        @activity.defn(name="cleanup")
        async def cleanup(request: StopTrainerInput) -> StopResult:
            self.cleaned.append(request.handle.attempt)
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
            request_admission,
            requeue_preempted,
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


def training_input(
    job_id: str, max_attempts: int = 3, max_interruptions: int = 10
) -> TrainingInput:
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
        max_attempts=max_attempts,
        max_interruptions=max_interruptions,
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


async def test_a_trainer_that_answers_the_stop_with_done_has_ended_the_job_itself(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="sync_tracking")

    async def trainer_says_done(workflow_id: str) -> None:
        # The trainer's done(cancelled) reaches the backend, which ends the job CANCELLED
        # (the cancel was requested) and signals the workflow.
        scripted.decided = "CANCELLED"
        done = TrainerDone(attempt=1, status="cancelled", reason="stopped on request")
        await temporal_env.client.get_workflow_handle(workflow_id).signal(TRAINER_DONE_SIGNAL, done)

    scripted.on_stop = trainer_says_done
    queue = f"stop-{uuid.uuid4().hex}"
    job_id = f"job_{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[TrainingWorkflow],
        activities=scripted.activities(),
    ):
        handle = await temporal_env.client.start_workflow(
            WORKFLOW_NAME, training_input(job_id), id=f"training-{job_id}", task_queue=queue
        )
        await asyncio.wait_for(scripted.entered_blocking.wait(), timeout=30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=30)

    # The workflow read the backend's verdict instead of deciding CANCELLED a second time.
    assert scripted.states == ["VALIDATING", "STARTING", None]
    assert scripted.finished_tracking == ["CANCELLED"]


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


KILLED = WatchResult(outcome="exited", exit_code=-9, log_tail=["epoch 2/4"])
LOST_ATTEMPT = WatchResult(outcome="lost", exit_code=-15)


async def run_scripted(
    temporal_env: WorkflowEnvironment,
    scripted: ScriptedActivities,
    max_attempts: int = 3,
    done_for_attempt: int | None = None,
    dones: dict[int, str] | None = None,
    max_interruptions: int = 10,
) -> TrainingResult:
    """Run the workflow to its end; `done_for_attempt`: once that attempt is launched, the
    backend's `trainer_done(succeeded)` signal arrives for it; `dones`: the statuses the
    signals of several attempts carry, each sent once its attempt is launched."""
    dones = dict(dones or {})
    if done_for_attempt is not None:
        dones[done_for_attempt] = "succeeded"
    queue = f"retry-{uuid.uuid4().hex}"
    job_id = f"job_{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[TrainingWorkflow],
        activities=scripted.activities(),
    ):
        handle: WorkflowHandle[
            TrainingWorkflow, TrainingResult
        ] = await temporal_env.client.start_workflow(
            WORKFLOW_NAME,
            training_input(job_id, max_attempts, max_interruptions),
            id=f"training-{job_id}",
            task_queue=queue,
            result_type=TrainingResult,
        )
        for attempt, status in sorted(dones.items()):
            while len(scripted.launches) < attempt:
                scripted.launched.clear()
                await asyncio.wait_for(scripted.launched.wait(), timeout=30)
            if status != "cancelled":  # as the backend does when it stores `done`
                scripted.decided = DONE_STATUS_TO_STATE[status]
            await handle.signal(TRAINER_DONE_SIGNAL, TrainerDone(attempt=attempt, status=status))
        return await asyncio.wait_for(handle.result(), timeout=60)


async def test_a_killed_attempt_is_followed_by_one_that_resumes_and_the_job_succeeds(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="none", watch_results=[KILLED, None])

    result = await run_scripted(temporal_env, scripted, done_for_attempt=2)

    assert (result.state, result.attempt) == ("SUCCEEDED", 2)
    assert [(launch.attempt, launch.retry_reason) for launch in scripted.launches] == [
        (1, None),
        (2, "trainer exited with code -9 (killed by signal 9): epoch 2/4"),
    ]
    # The trainer's done was decided by the backend: the workflow only read it.
    assert scripted.states == ["VALIDATING", "STARTING", None]
    assert scripted.cleaned == [1, 2]  # the first attempt's leftovers before the second starts
    assert scripted.finished_tracking == ["SUCCEEDED"]  # one run for the whole job


async def test_a_lost_attempt_is_retried_too(temporal_env: WorkflowEnvironment) -> None:
    scripted = ScriptedActivities(blocking="none", watch_results=[LOST_ATTEMPT, None])

    result = await run_scripted(temporal_env, scripted, done_for_attempt=2)

    assert result.state == "SUCCEEDED"
    assert scripted.launches[1].retry_reason == "no heartbeat for 120s: attempt 1 lost"


async def test_when_every_attempt_ends_without_a_result_the_job_fails_saying_so(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="none", watch_results=[KILLED, LOST_ATTEMPT])

    result = await run_scripted(temporal_env, scripted, max_attempts=2)

    assert (result.state, result.attempt) == ("FAILED", 2)
    assert result.reason == (
        "all 2 attempts ended without a result; the last: no heartbeat for 120s: attempt 2 lost"
    )
    assert [launch.attempt for launch in scripted.launches] == [1, 2]


@pytest.mark.parametrize(
    "final",
    [
        WatchResult(outcome="exited", exit_code=2, log_tail=["TRAINYARD_EPOCHS: must be ≥ 1"]),
        WatchResult(outcome="unstartable", exit_code=None, reason="ErrImagePull"),
    ],
    ids=["contract-error", "unstartable"],
)
async def test_a_contract_error_or_an_unstartable_attempt_is_never_retried(
    temporal_env: WorkflowEnvironment, final: WatchResult
) -> None:
    scripted = ScriptedActivities(blocking="none", watch_results=[final, None])

    result = await run_scripted(temporal_env, scripted)

    assert (result.state, result.attempt) == ("FAILED", 1)
    assert len(scripted.launches) == 1


DISRUPTED_POD = WatchResult(
    outcome="disrupted", exit_code=143, reason="DisruptionTarget: PreemptionByScheduler"
)
STOPPED_FROM_OUTSIDE = WatchResult(outcome="exited", exit_code=143, log_tail=["stopping"])


async def test_interruptions_start_new_attempts_without_spending_the_failure_budget(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(
        blocking="none", watch_results=[DISRUPTED_POD, STOPPED_FROM_OUTSIDE, KILLED, None]
    )

    # One failure allowed: the two interruptions before it do not count.
    result = await run_scripted(temporal_env, scripted, max_attempts=2, done_for_attempt=4)

    assert (result.state, result.attempt) == ("SUCCEEDED", 4)
    assert [(launch.retry_reason, launch.interrupted) for launch in scripted.launches] == [
        (None, False),
        ("its pod was taken by the cluster: DisruptionTarget: PreemptionByScheduler", True),
        ("stopped from outside: trainer exited with code 143: stopping", True),
        ("trainer exited with code -9 (killed by signal 9): epoch 2/4", False),
    ]
    assert scripted.cleaned == [1, 2, 3, 4]


async def test_a_trainer_reporting_cancelled_nobody_asked_for_is_interrupted_not_cancelled(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="none", watch_results=[None, None])

    result = await run_scripted(
        temporal_env, scripted, dones={1: "cancelled", 2: "succeeded"}, max_attempts=1
    )

    assert (result.state, result.attempt) == ("SUCCEEDED", 2)
    second = scripted.launches[1]
    assert second.interrupted
    assert second.retry_reason == ("the trainer of attempt 1 was stopped without a cancel request")
    assert "CANCELLED" not in scripted.states


async def test_a_job_interrupted_more_often_than_allowed_fails_saying_so(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="none", watch_results=[DISRUPTED_POD, DISRUPTED_POD])

    result = await run_scripted(temporal_env, scripted, max_interruptions=1)

    assert (result.state, result.attempt) == ("FAILED", 2)
    assert result.reason == (
        "interrupted 2 times; the last: its pod was taken by the cluster: "
        "DisruptionTarget: PreemptionByScheduler"
    )


async def test_a_lost_attempt_whose_trainer_answers_the_stop_with_cancelled_still_counts(
    temporal_env: WorkflowEnvironment,
) -> None:
    # The watch stops a silent trainer (SIGTERM); it answers done(cancelled): lost, not
    # interrupted, whichever of the two the workflow sees first.
    scripted = ScriptedActivities(blocking="none", watch_results=[LOST_ATTEMPT, None])

    result = await run_scripted(temporal_env, scripted, dones={1: "cancelled", 2: "succeeded"})

    assert (result.state, result.attempt) == ("SUCCEEDED", 2)
    second = scripted.launches[1]
    assert (second.retry_reason, second.interrupted) == (
        "no heartbeat for 120s: attempt 1 lost",
        False,
    )


def _queued(position: int = 1) -> AdmissionResult:
    return AdmissionResult(
        admitted=False, state="QUEUED", position=position, reason="waiting for a CPU slot"
    )


async def _start(
    temporal_env: WorkflowEnvironment, scripted: ScriptedActivities
) -> AsyncIterator[WorkflowHandle[TrainingWorkflow, TrainingResult]]:
    queue = f"admission-{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[TrainingWorkflow],
        activities=scripted.activities(),
    ):
        job_id = f"job_{uuid.uuid4().hex}"
        yield await temporal_env.client.start_workflow(
            TrainingWorkflow.run,
            training_input(job_id),
            id=f"training-{job_id}",
            task_queue=queue,
        )


async def test_a_queued_job_waits_launches_nothing_and_starts_when_the_backend_admits_it(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="")  # its trainer then trains on (the watch blocks)
    scripted.admission = [_queued(2), _queued(1)]
    async for handle in _start(temporal_env, scripted):
        await asyncio.wait_for(scripted.asked_admission.wait(), timeout=30)
        await asyncio.sleep(1.0)
        assert scripted.launches == []  # nothing starts while it waits
        assert "STARTING" not in scripted.states

        started = time.monotonic()
        await handle.signal(ADMITTED_SIGNAL)  # the first wake-up: still queued (position 1)
        await asyncio.wait_for(scripted.asked_again.wait(), timeout=20)
        await handle.signal(ADMITTED_SIGNAL)  # the second: admitted
        await asyncio.wait_for(scripted.launched.wait(), timeout=20)

        # Woken by the signals, not by the 30 s recheck.
        assert time.monotonic() - started < 10
        assert scripted.admission_requests == 3
        assert scripted.states.index("STARTING") > 0
        await handle.cancel()


async def test_a_job_cancelled_while_queued_ends_cancelled_without_a_trainer(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="")
    scripted.admission = [_queued()]
    async for handle in _start(temporal_env, scripted):
        await asyncio.wait_for(scripted.asked_admission.wait(), timeout=30)

        await handle.cancel()

        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=30)
        assert isinstance(failure.value.cause, CancelledError)
        assert scripted.states[-1] == "CANCELLED"
        assert scripted.launches == []


async def test_a_job_that_can_never_fit_fails_with_the_backends_sentence(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="")
    refusal = "asks for 2 GPUs, but this platform has no GPU: ask for 0 GPUs"
    scripted.admission = [AdmissionResult(admitted=False, state="VALIDATING", refused=refusal)]
    async for handle in _start(temporal_env, scripted):
        result = await asyncio.wait_for(handle.result(), timeout=30)

        assert result.state == "FAILED"
        assert result.reason == refusal
        assert scripted.launches == []


async def test_a_preempted_job_stops_its_trainer_waits_and_resumes_as_an_interruption(
    temporal_env: WorkflowEnvironment,
) -> None:
    scripted = ScriptedActivities(blocking="")  # each trainer trains on until stopped
    async for handle in _start(temporal_env, scripted):
        await asyncio.wait_for(scripted.launched.wait(), timeout=30)
        scripted.launched.clear()
        scripted.admission = [_queued()]  # after giving way, it waits once

        await handle.signal(PREEMPT_SIGNAL, Preempt(by="job_urgent"))

        await asyncio.wait_for(scripted.asked_again.wait(), timeout=30)
        assert scripted.stopped == [4242]  # its trainer got the stop (SIGTERM)
        assert scripted.requeued == [(1, "job_urgent")]
        assert len(scripted.launches) == 1  # nothing relaunched while it waits
        await handle.signal(ADMITTED_SIGNAL)
        await asyncio.wait_for(scripted.launched.wait(), timeout=30)

        second = scripted.launches[-1]
        assert second.attempt == 2
        assert second.interrupted is True  # not a failure: it resumes from its checkpoint
        assert "gave way to job_urgent" in (second.retry_reason or "")
        requeued_at = scripted.states.index("QUEUED")
        assert scripted.states[requeued_at:] == ["QUEUED", "STARTING"]  # then the relaunch
        await handle.cancel()
