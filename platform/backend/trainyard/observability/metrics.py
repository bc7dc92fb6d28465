"""The API's Prometheus metrics that the process counts itself (docs/operations.md, "Metrics").

Those read from the database at scrape time (jobs by state, GPU-seconds, per-run GPU
utilisation, heartbeat age) are in `scrape.py`. One uvicorn process serves the API (replicas
are separate pods, scraped one by one), so the default registry is enough: no multi-process
mode. Labels are bounded: framework, state, reason (telemetry.reasons), callback kind and code;
never a job id on these.

This module imports nothing of the app, so any layer (core.db, the buses) may count here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# From a queue of seconds (an idle embedded platform) to hours (a full cluster).
_WAIT_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
# Trainings last from seconds (a tiny test run) to days.
_RUN_BUCKETS = (10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 259200)
# Ingest is milliseconds when healthy; the tail shows a database in trouble.
_CALLBACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

JOB_SUBMISSIONS = Counter(
    "trainyard_job_submissions_total",
    "Jobs submitted (an Idempotency-Key replay is not a new submission).",
    ["framework"],
)
JOB_QUEUE_WAIT_SECONDS = Histogram(
    "trainyard_job_queue_wait_seconds",
    "Time from a job's submission to its first RUNNING (its trainer's first heartbeat).",
    ["framework"],
    buckets=_WAIT_BUCKETS,
)
JOB_RUN_DURATION_SECONDS = Histogram(
    "trainyard_job_run_duration_seconds",
    "Time from a job's first RUNNING to its terminal state, by that state.",
    ["framework", "state"],
    buckets=_RUN_BUCKETS,
)
JOBS_FINISHED = Counter(
    "trainyard_jobs_finished_total",
    "Jobs that reached a terminal state, by state and reason (trainyard_workflows."
    "telemetry.reasons: succeeded, cancelled, dataset_invalid, no_heartbeat, ...).",
    ["framework", "state", "reason"],
)
CALLBACKS = Counter(
    "trainyard_callbacks_total",
    "Trainer callbacks answered, by kind (heartbeat, event, done) and HTTP status code.",
    ["kind", "code"],
)
CALLBACK_SECONDS = Histogram(
    "trainyard_callback_duration_seconds",
    "Time to answer a trainer callback (ingest latency), by kind.",
    ["kind"],
    buckets=_CALLBACK_BUCKETS,
)
STREAM_CLIENTS = Gauge(
    "trainyard_stream_clients",
    "WebSocket clients following a job's events on this process.",
)
STREAM_RELAY_SECONDS = Histogram(
    "trainyard_stream_relay_latency_seconds",
    "Time from an event's commit (its created_at) to its relay to the job's live WebSocket "
    "clients on this process.",
    buckets=_RELAY_BUCKETS,
)
BUS_PUBLISH_FAILURES = Counter(
    "trainyard_bus_publish_failures_total",
    "Committed events the bus failed to publish (streams then read them from the database).",
)
