"""`trainyard-worker`: runs TrainingWorkflow (and the reconciler) with their activities on the
task queue. With the Kubernetes launcher it also makes sure the reconciler's schedule exists.

Stops on SIGINT/SIGTERM. With the subprocess launcher it then stops the trainers it runs
(SIGTERM, TRAINYARD_STOP_GRACE_S, SIGKILL): a local trainer left behind would hold the machine's
GPUs with nobody watching it, and its job resumes from its newest checkpoint, an interruption
rather than a failure, once a worker runs again. A worker that crashes or is killed leaves its
trainers running: the next worker finds them through their pid files when Temporal retries the
watch. Kubernetes trainers are the cluster's and outlive the worker either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta
from typing import NoReturn

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from trainyard_workflows.activities import TrainingActivities
from trainyard_workflows.activities.admission_activities import AdmissionActivities
from trainyard_workflows.activities.reconcile_activities import ReconcileActivities
from trainyard_workflows.activities.tracking_activities import TrackingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.capacity.reporter import CapacityReporter, discovery_for
from trainyard_workflows.launchers.factory import build_launcher
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.reconcile import ReconcileWorkflow, ensure_reconcile_schedule
from trainyard_workflows.settings import EMBEDDED_INTERNAL_TOKEN, WorkerSettings, get_settings
from trainyard_workflows.telemetry.activity_logs import ActivityLogContext
from trainyard_workflows.telemetry.logs import configure_logging
from trainyard_workflows.telemetry.metrics import serve_metrics, temporal_runtime
from trainyard_workflows.telemetry.tracing import (
    configure_tracing,
    instrument_httpx,
    shutdown_tracing,
    temporal_interceptors,
)
from trainyard_workflows.tracking import build_tracker
from trainyard_workflows.training import TrainingWorkflow

logger = logging.getLogger("trainyard_workflows.worker")

# Lets a short activity (a state report) finish instead of being cut and retried.
_GRACEFUL_SHUTDOWN = timedelta(seconds=3)


class TemporalUnreachableError(Exception):
    """Temporal did not answer within `temporal_connect_timeout_s`."""


async def connect_temporal(settings: WorkerSettings) -> Client:
    """Connect, retrying while the server starts (it may be starting alongside the worker)."""
    runtime = _runtime(settings)  # once: it binds its metrics port
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(RuntimeError),
        stop=stop_after_delay(settings.temporal_connect_timeout_s),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        reraise=True,
    )
    try:
        client: Client = await retrying(
            Client.connect,
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            runtime=runtime,
            # Workflows and activities join the trace of whoever started the workflow.
            interceptors=temporal_interceptors(),
        )
    except RuntimeError as error:
        raise TemporalUnreachableError(
            f"Temporal is unreachable at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace!r}) after "
            f"{settings.temporal_connect_timeout_s:g}s: {error}. Start it with "
            "`temporal server start-dev` (or `trainyard up`), or point "
            "TRAINYARD_TEMPORAL_ADDRESS at your cluster."
        ) from error
    return client


def _runtime(settings: WorkerSettings) -> Runtime | None:
    """The SDK runtime that serves Temporal's metrics, when a port is set (None: the default)."""
    if settings.temporal_metrics_port is None:
        return None
    return temporal_runtime(settings.metrics_host, settings.temporal_metrics_port)


def build_worker(
    client: Client,
    settings: WorkerSettings,
    activities: TrainingActivities,
    tracking: TrackingActivities,
    reconcile: ReconcileActivities,
    admission: AdmissionActivities,
) -> Worker:
    """The worker with every workflow and activity of the training task queue."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[TrainingWorkflow, ReconcileWorkflow],
        activities=[
            admission.request_admission,
            admission.requeue_preempted,
            reconcile.reconcile_launched,
            activities.report_state,
            activities.validate_dataset,
            activities.launch_trainer,
            activities.watch_trainer,
            activities.stop_trainer,
            activities.cleanup,
            tracking.start_tracking,
            tracking.sync_tracking,
            tracking.finish_tracking,
        ],
        graceful_shutdown_timeout=_GRACEFUL_SHUTDOWN,
        interceptors=[ActivityLogContext()],  # each activity's lines name its job and attempt
    )


async def run_worker(settings: WorkerSettings) -> None:
    """Serve the task queue until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if settings.internal_token == EMBEDDED_INTERNAL_TOKEN:
        logger.warning(
            "using the embedded internal token: fine on a laptop, but production must set "
            "TRAINYARD_INTERNAL_TOKEN (the same secret as the backend's)"
        )
    if settings.metrics_port is not None:
        serve_metrics(settings.metrics_host, settings.metrics_port)
    client = await connect_temporal(settings)
    launcher = build_launcher(settings)
    async with BackendClient(settings.backend_url, settings.internal_token) as backend:
        activities = TrainingActivities(backend, launcher, settings)
        tracking = TrackingActivities(backend, build_tracker(settings), settings)
        reconcile = ReconcileActivities(backend, launcher)
        admission = AdmissionActivities(backend)
        if settings.launcher == "kubernetes":
            every = timedelta(seconds=settings.reconcile_interval_s)
            if await ensure_reconcile_schedule(client, settings.task_queue, every):
                logger.info("created the reconciler's schedule (every %s)", every)
        # Beside the worker: admission needs to know what the machine or cluster has.
        reporter = CapacityReporter(
            backend, discovery_for(settings), settings.capacity_report_interval_s
        )
        reporting = asyncio.create_task(reporter.run(), name="capacity-reporter")
        try:
            async with build_worker(client, settings, activities, tracking, reconcile, admission):
                logger.info(
                    "trainyard-worker ready: task queue %r on %s (namespace %r), backend %s, "
                    "%s launcher",
                    settings.task_queue,
                    settings.temporal_address,
                    settings.temporal_namespace,
                    settings.backend_url,
                    settings.launcher,
                )
                await stop.wait()
                logger.info("trainyard-worker stopping")
            # After the Temporal worker stopped: no activity can launch another trainer now.
            if isinstance(launcher, SubprocessLauncher):
                await _stop_trainers(launcher, settings.stop_grace_s)
        finally:
            reporting.cancel()
            await asyncio.wait([reporting])  # it ends before the backend client closes
            await launcher.aclose()
    logger.info("trainyard-worker stopped")


async def _stop_trainers(launcher: SubprocessLauncher, grace_s: float) -> None:
    stopped = await launcher.stop_all(grace_s)
    for handle in stopped:
        logger.warning(
            "stopped attempt %s of %s (pid %s): the job resumes from its newest checkpoint "
            "when a worker runs again",
            handle.attempt,
            handle.job_id,
            handle.pid,
        )


def _exit(code: int) -> NoReturn:
    # Skip interpreter finalization: the Temporal bridge's Rust threads can outlive it and abort
    # the process (SIGABRT, "PyGILState_Release ... finalizing"; temporalio/sdk-python#300),
    # which would turn a clean exit into a crash. Everything worth keeping is flushed first.
    shutdown_tracing()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Console script `trainyard-worker`: exit 0 after a stop signal, 1 if Temporal is
    unreachable, 2 for invalid settings."""
    try:
        settings = get_settings()
    except ValidationError as error:
        print(f"trainyard-worker: invalid TRAINYARD_ settings:\n{error}", file=sys.stderr)
        _exit(2)
    configure_logging("trainyard-worker", "info", settings.log_format)
    configure_tracing("trainyard-worker")
    instrument_httpx()  # calls to the backend's internal API continue the activity's trace
    try:
        asyncio.run(run_worker(settings))
    except TemporalUnreachableError as error:
        print(f"trainyard-worker: {error}", file=sys.stderr)
        _exit(1)
    _exit(0)


if __name__ == "__main__":
    main()
