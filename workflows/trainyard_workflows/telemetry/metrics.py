"""The worker's Prometheus metrics (docs/operations.md, "Metrics").

One process serves them (the worker runs its activities in its own event loop), so the
default registry is enough: no multi-process mode. Served on TRAINYARD_METRICS_PORT by
`serve_metrics`; the Temporal SDK's own metrics (`temporal_*`) are served by the SDK's runtime
on TRAINYARD_TEMPORAL_METRICS_PORT (`temporal_runtime`). Labels are bounded: no job id.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

# Dataset checks take milliseconds (a small folder) to minutes (a large bucket).
_VALIDATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A local process starts in well under a second; a Kubernetes Job waits for its API call.
_LAUNCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

DATASET_VALIDATION_SECONDS = Histogram(
    "trainyard_dataset_validation_duration_seconds",
    "Time to validate a job's dataset, by dataset format and outcome (ok, invalid, error).",
    ["format", "outcome"],
    buckets=_VALIDATION_BUCKETS,
)
ATTEMPTS_ENDED = Counter(
    "trainyard_attempts_ended_total",
    "Trainer attempts that ended: retried (a failure, another attempt follows), interrupted "
    "(stopped from outside, another attempt follows) or final (the job ended), by reason.",
    ["outcome", "reason"],
)
TRAINER_LAUNCH_SECONDS = Histogram(
    "trainyard_trainer_launch_duration_seconds",
    "Time for the launcher to start an attempt's trainer (a process or a Kubernetes Job).",
    ["launcher"],
    buckets=_LAUNCH_BUCKETS,
)
RECONCILER_REMOVALS = Counter(
    "trainyard_reconciler_removals_total",
    "Launched objects (trainer Jobs, Secrets) the reconciler deleted because no live attempt "
    "needed them.",
)

# The attempt outcomes of trainyard_attempts_ended_total.
RETRIED = "retried"
INTERRUPTED = "interrupted"
FINAL = "final"


def serve_metrics(host: str, port: int) -> WSGIServer:
    """Serve /metrics (the default registry) on host:port from a daemon thread; the server
    (`shutdown()` stops it). Raises OSError when the port is taken."""
    server, _thread = start_http_server(port, addr=host)
    return server


def temporal_runtime(host: str, port: int) -> Runtime:
    """A Temporal SDK runtime whose metrics Prometheus scrapes on host:port; give it to the
    worker's client (`Client.connect(..., runtime=...)`)."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))
