"""Where a job's trace opens in MLflow's UI, the embedded tier's trace store (decision 015)."""

from __future__ import annotations

from urllib.parse import urlencode

from trainyard.core.settings import BackendSettings

# MLflow files a span it takes over OTLP under its trace id as `tr-<32 hex>`
# (mlflow.tracing.utils.generate_mlflow_trace_id_from_otel_trace_id).
MLFLOW_TRACE_ID_PREFIX = "tr-"


def mlflow_trace_id(trace_id: str) -> str:
    """MLflow's id of the trace whose OpenTelemetry id is `trace_id` (32 hex digits)."""
    return f"{MLFLOW_TRACE_ID_PREFIX}{trace_id}"


def trace_url(settings: BackendSettings, trace_id: str | None) -> str | None:
    """The trace's page in MLflow's UI: its experiment's traces tab with the trace open (the
    route MLflow's own "View trace" links use); None without a trace id, without an address
    users open MLflow at, or when traces do not go to MLflow."""
    base, experiment = settings.mlflow_link_base, settings.trace_experiment_id
    if not (trace_id and base and experiment):
        return None
    selected = mlflow_trace_id(trace_id)
    query = urlencode({"selectedEvaluationId": selected, "traceId": selected})
    return f"{base}/#/experiments/{experiment}/traces?{query}"
