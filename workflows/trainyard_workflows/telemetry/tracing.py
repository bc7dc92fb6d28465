"""OpenTelemetry tracing of one process (the API, the worker), from the standard OTEL_* variables.

`configure_tracing` always installs a real SDK TracerProvider, so trace ids exist and travel
(Temporal headers, a trainer's TRACEPARENT) even where nothing exports them; spans leave the
process by OTLP/HTTP only when an endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and `OTEL_TRACES_EXPORTER` is not `none`. Everything
else (sampler, headers, timeouts, resource attributes) is the SDK's own reading of OTEL_*.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from temporalio.contrib.opentelemetry import TracingInterceptor

# Where spans go, and how to reach it: what a trainer inherits from its worker (the
# contract's "exporter variables"), besides its own TRACEPARENT/TRACESTATE.
EXPORTER_ENV_VARS = (
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
)
# The W3C trace context of the span that launched the trainer (docs/trainer-contract.md).
CONTEXT_ENV_VARS = ("TRACEPARENT", "TRACESTATE")

_lock = threading.Lock()
_W3C = TraceContextTextMapPropagator()


class NoDatabaseRoots(Sampler):
    """A database or Redis call made outside any request (a background loop, the sweep, the
    metrics scrape) starts no trace: each would be a one-span trace nobody reads, and an idle
    platform would fill the trace store with them. Such calls are client spans that carry no
    HTTP method when they start (SQLAlchemy and Redis set their attributes later); an HTTP
    call is left alone, since it propagates its context to the service it calls. Everything
    else goes to `delegate` (OTEL_TRACES_SAMPLER, parent-based by default)."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind == SpanKind.CLIENT and not _is_http(attributes):
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoDatabaseRoots{{{self.delegate.get_description()}}}"


def _is_http(attributes: Attributes) -> bool:
    # Both semantic conventions' names (the instrumentations' opt-in decides which is set).
    if not attributes:
        return False
    return "http.request.method" in attributes or "http.method" in attributes


def exporting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether spans are exported: an OTLP endpoint is set and the exporter is not `none`."""
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint) and env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none"


def configure_tracing(service_name: str) -> TracerProvider:
    """The process's SDK TracerProvider, installed as the global one on the first call.

    Idempotent: a later call (another component of the same process) returns the provider
    already installed, unchanged. `OTEL_SERVICE_NAME`, when set, wins over `service_name`.
    Spans still buffered are flushed at interpreter exit (`shutdown_tracing` for a process
    that leaves through `os._exit`).
    """
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
        provider = TracerProvider(resource=Resource.create(named), shutdown_on_exit=True)
        # Before any tracer is made: a tracer keeps the sampler its provider had then.
        provider.sampler = NoDatabaseRoots(provider.sampler)
        if exporting():
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return provider


def shutdown_tracing() -> None:
    """Export what is buffered and stop; for a process that exits without running atexit."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits); None outside any valid span."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def current_context_env() -> dict[str, str]:
    """TRACEPARENT (and TRACESTATE, if any) of the current span; empty outside any span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return {name.upper(): value for name, value in carrier.items()}


def current_traceparent() -> str | None:
    """The current span's W3C `traceparent`; None outside any valid span."""
    return current_context_env().get("TRACEPARENT")


@contextmanager
def attached(context: Context | None) -> Iterator[None]:
    """Run the block in `context` (None: in the current one)."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The context a stored `traceparent` continues; None when there is none (or it is bad)."""
    if not traceparent:
        return None
    context = _W3C.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def trainer_trace_env() -> dict[str, str]:
    """What a trainer gets to join the trace: the current span's W3C context and the exporter
    variables this process has (docs/trainer-contract.md)."""
    env = {name: os.environ[name] for name in EXPORTER_ENV_VARS if os.environ.get(name)}
    env.update(current_context_env())
    return env


def temporal_interceptors() -> list[TracingInterceptor]:
    """The interceptors of every Temporal client (API and worker): spans for workflow starts,
    signals, workflows and activities, their context carried in Temporal headers. The legacy
    interceptor, not the experimental plugin: its workflow spans are replay-safe by design
    (made once, outside replay, with no duration)."""
    return [TracingInterceptor()]


def instrument_httpx() -> None:
    """Client spans (and `traceparent` headers) for every httpx request of this process."""
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
