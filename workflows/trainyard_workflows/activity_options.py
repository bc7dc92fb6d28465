"""Timeouts and retry policies of the TrainingWorkflow's activities (pure values: the workflow
sandbox imports this module)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Errors that another try cannot fix; everything else (backend unreachable, 5xx) is retried.
PERMANENT_ERRORS = [
    "BackendAuthError",
    "BackendError",
    "JobTerminalError",
    "TrainerNotInstalledError",
    "ValueError",
]
# State reports must eventually land (the backend is the only writer), so they retry until
# the backend is back rather than fail the job for a restart of the backend.
BACKEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT_ERRORS,
)
FEW_RETRIES = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT_ERRORS,
)
REPORT_TIMEOUT = timedelta(seconds=60)
VALIDATE_TIMEOUT = timedelta(minutes=15)
LAUNCH_TIMEOUT = timedelta(minutes=2)
# A training may run for days; liveness is what the heartbeat timeout is for.
WATCH_TIMEOUT = timedelta(days=30)
WATCH_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
STOP_TIMEOUT = timedelta(minutes=5)
# How long to wait for the `done` signal once the backend says done arrived.
DONE_SIGNAL_WAIT = timedelta(seconds=30)

# A queued job asks again this often: the backend's `admitted` signal is what wakes it, this
# only covers a signal lost (the API restarted between admitting and signalling).
ADMISSION_RECHECK = timedelta(seconds=30)

TRACKING_START_TIMEOUT = timedelta(minutes=2)
TRACKING_FINISH_TIMEOUT = timedelta(minutes=30)
