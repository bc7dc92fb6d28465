"""TrainingWorkflow: one job from validation to a terminal state.

VALIDATING -> validate_dataset -> request_admission (QUEUED until the backend admits the job:
capacity, quotas, priority; trainyard/admission) -> STARTING -> launch_trainer -> watch_trainer
until the trainer's
`done` arrives (signal from the backend) or its process exits or goes silent -> terminal state.
The first heartbeat of the trainer moves the job to RUNNING (the backend does that).

An attempt that ends without a result (the process was killed or crashed, or went silent) is
followed by the next one, which resumes from the newest checkpoint, until the job's
`max_attempts` are used; the trainer's own verdict (`done`), a contract error (exit 2) and a
trainer that cannot start end the job at once. An attempt interrupted from outside (its pod
preempted, evicted or drained; the trainer stopped by a SIGTERM the platform did not send,
which it answers with `done(cancelled)` and exit 143) is not the trainer's failure: the next
attempt resumes without spending `max_attempts`, up to `max_interruptions` times.
Deterministic code only: every side effect is an activity (activities/).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

from trainyard_workflows import activity_options as options
from trainyard_workflows.admission_steps import AdmissionSteps
from trainyard_workflows.job_states import TERMINAL_STATES, JobState
from trainyard_workflows.outcomes import (
    CONTRACT_ERROR_EXIT,
    STOPPED_EXIT_CODES,
    Retry,
    TrainingResult,
    activity_failure_reason,
    exit_reason,
)
from trainyard_workflows.run_tracking import JobTracking

# Import from the defining modules: the payload converter resolves a result's field types
# (e.g. ValidationReport.counts -> SplitCounts) in the module that defines it, and inside the
# sandbox only modules imported by name are there to look in.
with workflow.unsafe.imports_passed_through():
    from trainyard_workflows.activities.schemas import (
        DISRUPTED,
        EXITED,
        LOST,
        UNSTARTABLE,
        LaunchTrainerInput,
        ReportStateInput,
        ReportStateResult,
        StopResult,
        StopTrainerInput,
        ValidateDatasetInput,
        WatchResult,
        WatchTrainerInput,
    )
    from trainyard_workflows.activities.training_activities import TrainingActivities
    from trainyard_workflows.contracts import (
        ADMITTED_SIGNAL,
        PREEMPT_SIGNAL,
        TRAINER_DONE_SIGNAL,
        WORKFLOW_NAME,
        Preempt,
        TrainerDone,
        TrainingInput,
    )
    from trainyard_workflows.launchers.base import AttemptHandle
    from trainyard_workflows.validation.report import ValidationReport

# Workflows started before MLflow tracking existed replay without its activities.
TRACKING_PATCH = "mlflow-tracking"
# Workflows started before retries existed failed the job where they now retry.
RETRY_PATCH = "attempts-resume-from-checkpoint"
# Workflows started before interruptions were told apart ended CANCELLED on an outside SIGTERM.
INTERRUPT_PATCH = "interruptions-resume"
# Workflows started before admission existed went from validation straight to STARTING.
ADMISSION_PATCH = "admission-queue"
# Workflows started before preemption existed never give way to another job.
PREEMPTION_PATCH = "preemption"


@workflow.defn(name=WORKFLOW_NAME)
class TrainingWorkflow(AdmissionSteps):
    def __init__(self) -> None:
        super().__init__()
        self._attempt = 0
        self._interruptions = 0
        self._handle: AttemptHandle | None = None
        self._done: TrainerDone | None = None
        self._tracking = JobTracking()

    @workflow.signal(name=PREEMPT_SIGNAL)
    def preempt(self, order: Preempt) -> None:
        """The backend chose this running job to give way to `order.by`."""
        if self._preempted_by is None:
            self._preempted_by = order.by

    @workflow.signal(name=ADMITTED_SIGNAL)
    def admitted(self) -> None:
        """The backend admitted the queued job: ask again now instead of at the next recheck."""
        self._admitted = True

    @workflow.signal(name=TRAINER_DONE_SIGNAL)
    def trainer_done(self, done: TrainerDone) -> None:
        """The backend relays the trainer's `done` callback; only the current attempt counts."""
        if done.attempt != self._attempt:
            workflow.logger.info(
                "ignoring done of attempt %s (current attempt %s)", done.attempt, self._attempt
            )
            return
        if self._done is None:
            self._done = done

    @workflow.run
    async def run(self, training: TrainingInput) -> TrainingResult:
        job_id = training.job_id
        try:
            entered = await self._report(job_id, JobState.VALIDATING)
            if entered.state in TERMINAL_STATES:
                return TrainingResult(state=entered.state, reason="job ended before validation")

            report: ValidationReport = await workflow.execute_activity_method(
                TrainingActivities.validate_dataset,
                ValidateDatasetInput(job_id, training.dataset_uri, training.task),
                start_to_close_timeout=options.VALIDATE_TIMEOUT,
                retry_policy=options.FEW_RETRIES,
            )
            if not report.ok:
                first = "; ".join(report.errors[:3])
                return await self._finish(
                    job_id, JobState.FAILED, f"dataset validation failed: {first}"
                )

            if workflow.patched(ADMISSION_PATCH):
                held = await self._wait_for_admission(job_id)
                if held is not None:
                    return held

            entered = await self._report(job_id, JobState.STARTING)
            if entered.state in TERMINAL_STATES:
                return TrainingResult(state=entered.state, reason="job ended before launch")

            # Set before launching: a quick trainer may report done before launch returns.
            self._attempt = 1
            await self._launch(LaunchTrainerInput(training, self._attempt))
            while True:
                assert self._handle is not None
                outcome = await self._supervise(training, self._handle)
                if isinstance(outcome, TrainingResult):
                    return outcome
                ended, self._handle = self._handle, None
                await self._stop(TrainingActivities.cleanup, ended)
                if outcome.preempted_by is not None:
                    held = await self._requeue(job_id, outcome.preempted_by)
                    if held is not None:
                        return held
                self._attempt += 1
                self._done = None
                await self._launch(
                    LaunchTrainerInput(training, self._attempt, outcome.reason, outcome.interrupted)
                )
        except asyncio.CancelledError:
            await self._wind_down_cancelled(job_id, self._handle)
            raise
        except ActivityError as error:
            if _cancel_requested():
                # The cancel arrived while an activity was awaited: the SDK hands it over as
                # that activity's failure, but the job was cancelled, not failed.
                await self._wind_down_cancelled(job_id, self._handle)
                raise asyncio.CancelledError(workflow.cancellation_reason()) from error
            return await self._finish(job_id, JobState.FAILED, activity_failure_reason(error))
        finally:
            if self._handle is not None:
                await self._stop(TrainingActivities.cleanup, self._handle)

    async def _wait_for_admission(self, job_id: str) -> TrainingResult | None:
        """Until the backend admits the job (None); a result when it ends instead: refused
        (it can never fit here) or ended while it waited."""
        answer = await self._ask_until_admitted(job_id)
        if answer.state in TERMINAL_STATES:
            return TrainingResult(state=answer.state, reason="job ended while queued")
        if answer.refused is not None:
            return await self._finish(job_id, JobState.FAILED, answer.refused)
        return None

    async def _requeue(self, job_id: str, by: str) -> TrainingResult | None:
        """After giving way: QUEUED again, then admitted (None) or ended meanwhile. Not a
        failure, and no limit: nobody chose to be preempted."""
        requeued = await self._back_to_queue(job_id, self._attempt, by)
        self._interruptions += 1
        if requeued.state in TERMINAL_STATES:
            return TrainingResult(state=requeued.state, reason="job ended while preempted")
        held = await self._wait_for_admission(job_id)
        if held is not None:
            return held
        entered = await self._report(job_id, JobState.STARTING)
        if entered.state in TERMINAL_STATES:
            return TrainingResult(state=entered.state, reason="job ended before relaunch")
        return None

    async def _launch(self, request: LaunchTrainerInput) -> None:
        """Start the attempt's trainer; its handle is kept even when a cancel interrupts."""
        launch = workflow.start_activity_method(
            TrainingActivities.launch_trainer,
            request,
            start_to_close_timeout=options.LAUNCH_TIMEOUT,
            retry_policy=options.FEW_RETRIES,
        )
        try:
            self._handle = await asyncio.shield(launch)
        except asyncio.CancelledError:
            # Cancelled mid-launch: let the launch finish so its trainer can be stopped
            # instead of running on unseen.
            self._handle = await launch
            raise

    async def _wind_down_cancelled(self, job_id: str, handle: AttemptHandle | None) -> None:
        workflow.logger.info("job %s cancelled", job_id)
        if handle is not None:
            await self._stop(TrainingActivities.stop_trainer, handle)
        # A trainer that answered the stop with `done` ended the job already (the backend
        # decides a done): read that. Only a trainer that said nothing leaves it to the workflow.
        decided = self._done is not None and self._done.attempt == self._attempt
        state = None if decided else JobState.CANCELLED
        reported = await self._report(job_id, state, "cancelled")
        await self._tracking.finish(job_id, reported.state)

    async def _supervise(
        self, training: TrainingInput, handle: AttemptHandle
    ) -> TrainingResult | Retry:
        """Wait for the first of: the `done` signal, or the watch seeing the process end."""
        watch = workflow.start_activity_method(
            TrainingActivities.watch_trainer,
            WatchTrainerInput(handle, training.heartbeat_timeout_s),
            start_to_close_timeout=options.WATCH_TIMEOUT,
            heartbeat_timeout=options.WATCH_HEARTBEAT_TIMEOUT,
            retry_policy=options.FEW_RETRIES,
        )
        sync: workflow.ActivityHandle[None] | None = None
        preemptible = workflow.patched(PREEMPTION_PATCH)
        try:
            if workflow.patched(TRACKING_PATCH):
                sync = await self._tracking.follow_attempt(training.job_id, handle.attempt)
            await workflow.wait_condition(
                lambda: (
                    self._done is not None
                    or watch.done()
                    or (preemptible and self._preempted_by is not None)
                )
            )
        finally:
            for running in (watch, sync):
                if running is not None and not running.done():
                    running.cancel()
                    # Awaiting it raises the cancellation we asked for.
                    with contextlib.suppress(ActivityError):
                        await running

        watched = _verdict(watch)
        if preemptible and self._preempted_by is not None and self._done is None and not watched:
            # Its trainer stops (SIGTERM: it answers done(cancelled), an interruption).
            await self._stop(TrainingActivities.stop_trainer, handle)
            reason = f"attempt {handle.attempt} gave way to {self._preempted_by}"
            return Retry(reason, interrupted=True, preempted_by=self._preempted_by)
        # A trainer the watch stopped (lost, disrupted) answers SIGTERM with done(cancelled):
        # the watch's verdict says why the attempt ended, not that done.
        watch_decided = (
            watched is not None and watched.outcome != EXITED and workflow.patched(INTERRUPT_PATCH)
        )
        if self._done is not None and not watch_decided:
            return await self._after_done(training, handle, self._done)

        result: WatchResult = watched if watched is not None else watch.result()
        if result.outcome == DISRUPTED:
            lost_pod = f"its pod was taken by the cluster: {result.reason}"
            return await self._interrupted(training, lost_pod)
        if result.outcome == UNSTARTABLE:
            reason = f"attempt {handle.attempt} could not start: {result.reason}"
            return await self._finish(training.job_id, JobState.FAILED, reason)
        if result.outcome == LOST:
            timeout = f"{training.heartbeat_timeout_s:g}"
            lost = f"no heartbeat for {timeout}s: attempt {handle.attempt} lost"
            if self._may_retry(training):
                return Retry(lost)
            return await self._finish(training.job_id, JobState.FAILED, self._final(training, lost))
        if result.outcome == EXITED and result.done_reported:
            try:
                await workflow.wait_condition(
                    lambda: self._done is not None, timeout=options.DONE_SIGNAL_WAIT
                )
            except TimeoutError:
                workflow.logger.warning("done stored by the backend but no signal arrived")
            if self._done is not None:
                return await self._after_done(training, handle, self._done)
            # The backend stored `done` and ended the job then: its state is the verdict.
            return await self._finish(training.job_id, None, None)
        reason = exit_reason(result.exit_code, result.log_tail)
        if (
            result.exit_code in STOPPED_EXIT_CODES
            and not result.done_reported
            and not _cancel_requested()
            and workflow.patched(INTERRUPT_PATCH)
        ):
            return await self._interrupted(training, f"stopped from outside: {reason}")
        if (
            not result.done_reported
            and result.exit_code != CONTRACT_ERROR_EXIT
            and self._may_retry(training)
        ):
            return Retry(reason)
        return await self._finish(training.job_id, JobState.FAILED, self._final(training, reason))

    def _may_retry(self, training: TrainingInput) -> bool:
        # patched() last: histories from before retries replay their FAILED ending unchanged.
        return self._failed_attempts < training.max_attempts and workflow.patched(RETRY_PATCH)

    @property
    def _failed_attempts(self) -> int:
        return self._attempt - self._interruptions

    def _final(self, training: TrainingInput, reason: str) -> str:
        """The failure reason, saying so when the job used up its attempts."""
        failed = self._failed_attempts
        if failed > 1 and failed >= training.max_attempts:
            return (
                f"all {training.max_attempts} attempts ended without a result; the last: {reason}"
            )
        return reason

    async def _after_done(
        self, training: TrainingInput, handle: AttemptHandle, done: TrainerDone
    ) -> TrainingResult | Retry:
        """The trainer's verdict ends the job, unless it says `cancelled` when nobody asked:
        then something outside stopped it (a pod preempted or drained, a kill -TERM)."""
        if (
            done.status == "cancelled"
            and not _cancel_requested()
            and workflow.patched(INTERRUPT_PATCH)
        ):
            why = f"the trainer of attempt {handle.attempt} was stopped without a cancel request"
            return await self._interrupted(training, why)
        return await self._conclude_done(training.job_id, done)

    async def _interrupted(self, training: TrainingInput, reason: str) -> TrainingResult | Retry:
        """Another attempt, not counted as a failure, unless interruptions are used up."""
        if self._interruptions < training.max_interruptions and workflow.patched(RETRY_PATCH):
            self._interruptions += 1
            return Retry(reason, interrupted=True)
        limit = f"interrupted {self._interruptions + 1} times"
        return await self._finish(training.job_id, JobState.FAILED, f"{limit}; the last: {reason}")

    async def _conclude_done(self, job_id: str, done: TrainerDone) -> TrainingResult:
        # The backend ended the job when it stored `done` (the one place a trainer's verdict
        # becomes a state, callbacks.service.done): read that state, do not decide it again.
        return await self._finish(job_id, None, done.reason)

    async def _finish(self, job_id: str, state: str | None, reason: str | None) -> TrainingResult:
        """End the job in `state` (None: as the backend already ended it) and its tracking."""
        reported = await self._report(job_id, state, reason)
        await self._tracking.finish(job_id, reported.state)
        decided_here = state is None or reported.applied or reported.state == state
        final_reason = reason if decided_here else None
        return TrainingResult(state=reported.state, reason=final_reason, attempt=self._attempt)

    async def _report(
        self, job_id: str, state: str | None, reason: str | None = None
    ) -> ReportStateResult:
        return await workflow.execute_activity_method(
            TrainingActivities.report_state,
            ReportStateInput(job_id, state, reason),
            start_to_close_timeout=options.REPORT_TIMEOUT,
            retry_policy=options.BACKEND_RETRY,
        )

    async def _stop(
        self,
        activity: Callable[[TrainingActivities, StopTrainerInput], Awaitable[StopResult]],
        handle: AttemptHandle,
    ) -> None:
        await workflow.execute_activity_method(
            activity,
            StopTrainerInput(handle),
            start_to_close_timeout=options.STOP_TIMEOUT,
            heartbeat_timeout=options.WATCH_HEARTBEAT_TIMEOUT,
            retry_policy=options.FEW_RETRIES,
        )


def _verdict(watch: workflow.ActivityHandle[WatchResult]) -> WatchResult | None:
    """The watch's result if it ended with one (not cancelled, not failed)."""
    if not watch.done() or watch.cancelled() or watch.exception() is not None:
        return None
    return watch.result()


def _cancel_requested() -> bool:
    """Whether the workflow was asked to cancel.

    A cancel that arrives while an activity is awaited surfaces as that activity's
    ActivityError rather than as CancelledError, so `except ActivityError` must ask this.
    """
    return workflow.cancellation_reason() is not None
