"""The side effects of TrainingWorkflow. Each activity is idempotent on (job, attempt): Temporal
may run one again after a worker crash or a timeout."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import asdict
from datetime import datetime
from typing import TypeVar

from temporalio import activity

from trainyard_workflows.activities.attempt_messages import retry_message, where_it_runs
from trainyard_workflows.activities.backend_calls import heartbeating, post_event_quietly, quietly
from trainyard_workflows.activities.cluster_follow import ClusterFollower
from trainyard_workflows.activities.cluster_wait import ClusterWait
from trainyard_workflows.activities.log_shipping import LogShipping, heartbeat
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
from trainyard_workflows.activities.trainer_env import attempt_output, trainer_env
from trainyard_workflows.backend_client import BackendClient, BackendError, JobTerminalError
from trainyard_workflows.internal_api import Liveness
from trainyard_workflows.job_states import JobState
from trainyard_workflows.launchers.base import (
    AttemptHandle,
    Launcher,
    LaunchRequest,
    PendingReason,
)
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.storage import StorageSettings
from trainyard_workflows.telemetry.log_lines import readable_lines
from trainyard_workflows.telemetry.metrics import (
    ATTEMPTS_ENDED,
    DATASET_VALIDATION_SECONDS,
    FINAL,
    INTERRUPTED,
    RETRIED,
    TRAINER_LAUNCH_SECONDS,
)
from trainyard_workflows.telemetry.reasons import failure_reason, finish_reason
from trainyard_workflows.validation import ValidationReport, validate_dataset

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOG_TAIL_LINES = 20
# Lines of the trainer's log the watch reads each time it ships the log tail.
LOG_SHIP_LINES = 50


class TrainingActivities:
    """Activities as methods, so the worker hands in its clients and tests need no patching."""

    def __init__(
        self, backend: BackendClient, launcher: Launcher, settings: WorkerSettings
    ) -> None:
        self._backend = backend
        self._launcher = launcher
        self._settings = settings
        self._cluster = ClusterFollower(backend, launcher, settings.watch_poll_s)

    @activity.defn
    async def report_state(self, request: ReportStateInput) -> ReportStateResult:
        """Transition the job; a refused move (409) reports the job's current state instead, and
        so does a request for no state (the backend decided it)."""
        if request.state is None:
            liveness = await self._backend.liveness(request.job_id)
            _count_final_attempt(request, liveness.state, liveness.attempt)
            return ReportStateResult(applied=False, state=liveness.state)
        result = await self._backend.transition(request.job_id, request.state, request.reason)
        if result.applied:
            job = result.job or {}
            state = str(job.get("state", request.state))
            _count_final_attempt(request, state, int(job.get("attempt", 0)))
            return ReportStateResult(applied=True, state=state)
        liveness = await self._backend.liveness(request.job_id)
        logger.info(
            "job %s: move to %s refused (%s), job is %s",
            request.job_id,
            request.state,
            result.detail,
            liveness.state,
        )
        _count_final_attempt(request, liveness.state, liveness.attempt)
        return ReportStateResult(applied=False, state=liveness.state)

    @activity.defn
    async def validate_dataset(self, request: ValidateDatasetInput) -> ValidationReport:
        """Check the dataset before any trainer starts; the report goes on the job's timeline."""
        # Storage settings are read per call (cheap) so the worker's one settings class stays
        # as it is; the dataset may be a local folder or a prefix in the configured bucket.
        storage = StorageSettings(data_dir=self._settings.data_dir)
        started = time.monotonic()
        try:
            report = await asyncio.to_thread(
                validate_dataset, request.dataset_uri, request.task, storage
            )
        except Exception:
            DATASET_VALIDATION_SECONDS.labels("unknown", "error").observe(
                time.monotonic() - started
            )
            raise
        DATASET_VALIDATION_SECONDS.labels(
            report.format or "unknown", "ok" if report.ok else "invalid"
        ).observe(time.monotonic() - started)
        try:
            await self._backend.post_event(
                request.job_id, "validation_report", report.summary(), asdict(report)
            )
        except JobTerminalError:
            # Cancelled while the dataset was read: its timeline is closed, and nothing runs.
            logger.info("job %s ended during validation; report not stored", request.job_id)
        return report

    @activity.defn
    async def launch_trainer(self, request: LaunchTrainerInput) -> AttemptHandle:
        """Issue the attempt's callback token and start its trainer (or find it running).

        An attempt after the first resumes from the newest checkpoint an earlier attempt saved.
        """
        training = request.training
        output_dir = self._settings.attempt_dir(training.job_id, request.attempt)
        storage = StorageSettings(data_dir=self._settings.data_dir)
        output = attempt_output(output_dir, storage, training.job_id, request.attempt)
        token = await self._backend.issue_attempt_token(training.job_id, request.attempt, output)
        checkpoint = (
            await self._backend.latest_checkpoint(training.job_id) if request.attempt > 1 else None
        )
        if request.retry_reason is not None:
            await self._post_event_quietly(
                training.job_id,
                "attempt_retried",
                retry_message(request, checkpoint),
                {
                    "attempt": request.attempt,
                    "max_attempts": training.max_attempts,
                    "reason": request.retry_reason,
                    "interrupted": request.interrupted,
                    "resume_from": checkpoint.path if checkpoint else None,
                    "resume_epoch": checkpoint.epoch if checkpoint else None,
                },
            )
        env = trainer_env(
            training,
            attempt=request.attempt,
            callback_url=self._settings.trainer_callback_url,
            callback_token=token.callback_token,
            output_dir=output_dir,
            keepalive_s=self._settings.keepalive_s,
            # With S3 storage: TRAINYARD_OUTPUT_URI and the AWS_* credentials (secrets).
            storage=storage,
            resume_from=checkpoint,
            log_format=self._settings.log_format,
        )
        launch_started = time.monotonic()
        handle = await self._launcher.launch(
            LaunchRequest(
                job_id=training.job_id,
                attempt=request.attempt,
                framework=training.framework,
                output_dir=str(output_dir),
                env=env,
                gpus=training.gpus,
                # From the grant, not the workflow input: jobs submitted before projects too.
                project_slug=token.project_slug,
                priority=token.priority,
            )
        )
        TRAINER_LAUNCH_SECONDS.labels(self._settings.launcher).observe(
            time.monotonic() - launch_started
        )
        # Best effort: failing the activity here would leave a running trainer the workflow
        # holds no handle to.
        await self._post_event_quietly(
            training.job_id,
            "attempt_launched",
            f"attempt {handle.attempt} launched ({where_it_runs(handle)})",
            {
                "attempt": handle.attempt,
                "pid": handle.pid,
                "log_path": handle.log_path,
                "output_dir": handle.output_dir,
                "kubernetes_job": f"{handle.namespace}/{handle.name}" if handle.name else None,
                "resume_from": checkpoint.path if checkpoint else None,
            },
        )
        if request.retry_reason is not None:
            # Last, so a retried launch activity does not count the previous attempt twice.
            outcome = INTERRUPTED if request.interrupted else RETRIED
            ATTEMPTS_ENDED.labels(outcome, failure_reason(request.retry_reason)).inc()
        return handle

    @activity.defn
    async def watch_trainer(self, request: WatchTrainerInput) -> WatchResult:
        """Poll the trainer until it exits or stays silent for `heartbeat_timeout_s`.

        Heartbeats to Temporal on every poll, which is also how a cancellation from the
        workflow arrives (as CancelledError at the next await).
        """
        handle = request.handle
        # Seconds are measured on this worker's clock: the backend's timestamps are only
        # compared with each other, so clock skew between machines cannot fake a loss.
        last_sign_of_life = handle.launched_at
        seen_heartbeat: datetime | None = None
        done_reported = False
        cluster = ClusterWait()
        # A watch run again after a worker restart goes on shipping from where it was.
        logs = LogShipping.resume(activity.info().heartbeat_details, last_at=time.time())
        logs.follow()
        liveness_every = min(self._settings.liveness_poll_s, request.heartbeat_timeout_s / 4)
        next_liveness_at = 0.0
        answered_at = time.time()
        while True:
            heartbeat()
            if await self._cluster.follow(handle, cluster):
                # Waiting on the cluster (a GPU node, an image, a quota) is not silence: the
                # heartbeat timeout starts once the trainer can run.
                last_sign_of_life = max(last_sign_of_life, time.time())
            if cluster.disrupted:
                return await self._end_disrupted(handle, cluster.disrupted, done_reported)
            if cluster.stuck and time.time() - cluster.stuck_since > self._unstartable_s:
                return await self._give_up(handle, cluster.stuck, done_reported)
            status = await self._launcher.status(handle)
            if not status.running:
                liveness = await self._liveness_quietly(handle.job_id)
                if liveness is not None and not liveness.done:
                    await self._ship_log(handle, logs)
                tail = readable_lines(await self._launcher.log_tail(handle, LOG_TAIL_LINES))
                return WatchResult(
                    outcome=EXITED,
                    exit_code=status.exit_code,
                    log_tail=tail,
                    done_reported=liveness.done if liveness else done_reported,
                )
            if time.monotonic() < next_liveness_at:
                await asyncio.sleep(self._settings.watch_poll_s)
                continue
            next_liveness_at = time.monotonic() + liveness_every
            liveness = await self._liveness_quietly(handle.job_id)
            if liveness is not None:
                if time.time() - answered_at > 2 * liveness_every + self._settings.watch_poll_s:
                    # The backend was away (an outage, a restart): the trainer's callbacks did
                    # not get through either, and its retries need a moment once it is back.
                    last_sign_of_life = max(last_sign_of_life, time.time())
                answered_at = time.time()
                done_reported = liveness.done
                # Shipped with this poll: its answer says the job still streams, so the log
                # costs no request of its own to check that.
                if not liveness.done and time.time() - logs.last_at >= self._settings.log_ship_s:
                    await self._ship_log(handle, logs)
                if (
                    liveness.last_heartbeat_at is not None
                    and liveness.last_heartbeat_at != seen_heartbeat
                ):
                    seen_heartbeat = liveness.last_heartbeat_at
                    last_sign_of_life = max(last_sign_of_life, time.time())
                # Only a backend that answers can vouch that no heartbeat arrived.
                silent_for = time.time() - last_sign_of_life
                if silent_for > request.heartbeat_timeout_s:
                    logger.warning(
                        "job %s attempt %s: no heartbeat for %.0fs, stopping pid %s",
                        handle.job_id,
                        handle.attempt,
                        silent_for,
                        handle.pid,
                    )
                    stopped = await self._heartbeating(
                        self._launcher.stop(handle, self._settings.stop_grace_s)
                    )
                    tail = readable_lines(await self._launcher.log_tail(handle, LOG_TAIL_LINES))
                    return WatchResult(
                        outcome=LOST,
                        exit_code=stopped.exit_code,
                        log_tail=tail,
                        done_reported=done_reported,
                    )
            await asyncio.sleep(self._settings.watch_poll_s)

    async def _ship_log(self, handle: AttemptHandle, logs: LogShipping) -> None:
        """Post the trainer's log lines written since the last time as one `log` event.

        Only while the job is not terminal: a job's stream ends with its terminal state, so
        an event after it would be on the timeline but never streamed.
        """
        logs.last_at = time.time()
        tail = await self._quietly(self._launcher.log_tail(handle, LOG_SHIP_LINES), handle, [])
        fresh = logs.fresh(tail)
        if fresh:
            lines = [line[:1000] for line in readable_lines(fresh)]
            await self._post_event_quietly(
                handle.job_id, "log", "", {"attempt": handle.attempt, "lines": lines}
            )

    @property
    def _unstartable_s(self) -> float:
        return self._settings.unstartable_timeout_s

    async def _end_disrupted(
        self, handle: AttemptHandle, disrupted: list[PendingReason], done_reported: bool
    ) -> WatchResult:
        """Stop an attempt whose pod the cluster took: the Job would only start the trainer
        afresh in a new pod, while the next attempt resumes from the newest checkpoint."""
        why = "; ".join(map(str, disrupted))
        logger.info("job %s attempt %s disrupted: %s", handle.job_id, handle.attempt, why)
        stopped = await self._heartbeating(self._launcher.stop(handle, self._settings.stop_grace_s))
        return WatchResult(
            outcome=DISRUPTED,
            exit_code=stopped.exit_code,
            done_reported=done_reported,
            reason=why[:2000],
        )

    async def _give_up(
        self, handle: AttemptHandle, stuck: list[PendingReason], done_reported: bool
    ) -> WatchResult:
        """Stop an attempt that cannot start; the workflow fails the job with the reason."""
        why = "; ".join(map(str, stuck))
        logger.warning("job %s attempt %s cannot start: %s", handle.job_id, handle.attempt, why)
        stopped = await self._heartbeating(self._launcher.stop(handle, self._settings.stop_grace_s))
        return WatchResult(
            outcome=UNSTARTABLE,
            exit_code=stopped.exit_code,
            done_reported=done_reported,
            reason=f"{why} (for more than {self._unstartable_s:g}s)"[:2000],
        )

    @activity.defn
    async def stop_trainer(self, request: StopTrainerInput) -> StopResult:
        """Stop the attempt (SIGTERM, then SIGKILL after the grace period); idempotent."""
        result = await self._stop(request.handle)
        if result.was_running:
            await self._post_event_quietly(
                request.handle.job_id,
                "attempt_stopped",
                f"attempt {request.handle.attempt} stopped (exit code {result.exit_code})",
                {"attempt": request.handle.attempt, "exit_code": result.exit_code},
            )
        return result

    @activity.defn
    async def cleanup(self, request: StopTrainerInput) -> StopResult:
        """Make sure nothing of the attempt keeps running; a no-op once it has exited."""
        return await self._stop(request.handle)

    async def _stop(self, handle: AttemptHandle) -> StopResult:
        status = await self._launcher.status(handle)
        if not status.running:
            return StopResult(was_running=False, exit_code=status.exit_code)
        stopped = await self._heartbeating(self._launcher.stop(handle, self._settings.stop_grace_s))
        return StopResult(was_running=True, exit_code=stopped.exit_code)

    async def _heartbeating(self, work: Awaitable[T]) -> T:
        return await heartbeating(work, self._settings.watch_poll_s)

    async def _quietly(self, ask: Awaitable[T], handle: AttemptHandle, fallback: T) -> T:
        return await quietly(ask, handle.job_id, self._settings.watch_poll_s, fallback)

    async def _liveness_quietly(self, job_id: str) -> Liveness | None:
        try:
            return await self._heartbeating(self._backend.liveness(job_id))
        except BackendError as error:
            logger.warning("job %s: liveness unavailable: %s", job_id, error)
            return None

    async def _post_event_quietly(
        self, job_id: str, type_: str, message: str, data: dict[str, object]
    ) -> None:
        await post_event_quietly(self._backend, job_id, type_, message, data)


def _count_final_attempt(request: ReportStateInput, state: str, attempt: int) -> None:
    """The job ended after a trainer ran: its last attempt ended for good. (The workflow
    reports a job's end once; `report_state` counts last, so a retried report counts once.)"""
    if attempt < 1 or not JobState(state).terminal:
        return
    # No state asked for: the backend decided it from the trainer's `done`.
    source = "trainer" if request.state is None else "worker"
    ATTEMPTS_ENDED.labels(FINAL, finish_reason(state, request.reason, source)).inc()
