"""The span around one trainer launch, and the trace context the trainer inherits from it.

Every launcher wraps its launch in `launch_span`: the trainer gets TRACEPARENT/TRACESTATE of
this span (its `trainer.attempt` span is a child of it) and the worker's OTLP exporter
variables (docs/trainer-contract.md, "Tracing"), so its spans land in the job's trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from trainyard_workflows.launchers.base import LaunchRequest
from trainyard_workflows.telemetry.tracing import trainer_trace_env

_tracer = trace.get_tracer(__name__)

LAUNCH_SPAN = "launch trainer"


@contextmanager
def launch_span(request: LaunchRequest, launcher: str) -> Iterator[LaunchRequest]:
    """`request` with the trace variables added to its env, inside the launch span."""
    attributes: dict[str, AttributeValue] = {
        "trainyard.job_id": request.job_id,
        "trainyard.attempt": request.attempt,
        "trainyard.framework": request.framework,
        "trainyard.launcher": launcher,
    }
    with _tracer.start_as_current_span(LAUNCH_SPAN, attributes=attributes):
        yield replace(request, env={**request.env, **trainer_trace_env()})
