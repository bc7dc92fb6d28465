"""A trace read back from the embedded tier's trace store, the MLflow server (decision 015)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlflow.entities import Trace
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from trainyard.observability.trace_links import mlflow_trace_id


@dataclass(frozen=True)
class StoredSpan:
    """One span as MLflow stored it; ids in OpenTelemetry's hex (trace 32, span 16 digits)."""

    name: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, object]


def stored_trace(mlflow_url: str, trace_id: str) -> Trace:
    """MLflow's record of the OpenTelemetry trace `trace_id` (32 hex digits)."""
    client = MlflowClient(tracking_uri=mlflow_url)
    trace: Trace = client.get_trace(mlflow_trace_id(trace_id), display=False)
    return trace


def stored_spans(
    mlflow_url: str, trace_id: str, at_least: int = 1, timeout_s: float = 30.0
) -> list[StoredSpan]:
    """The spans of trace `trace_id` that reached MLflow, once there are `at_least` of them
    (spans of one trace arrive in several exports, from several processes)."""
    deadline = time.monotonic() + timeout_s
    found: list[StoredSpan] = []
    while True:
        try:
            trace = stored_trace(mlflow_url, trace_id)
        except MlflowException:
            trace = None  # not stored yet
        if trace is not None:
            found = [
                StoredSpan(
                    name=span.name,
                    span_id=span.span_id,
                    parent_id=span.parent_id,
                    attributes=dict(span.attributes),
                )
                for span in trace.data.spans
            ]
            if len(found) >= at_least:
                return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"trace {trace_id}: {len(found)} span(s) in MLflow after {timeout_s:g} s, "
                f"expected at least {at_least}: {[span.name for span in found]}"
            )
        time.sleep(0.5)
