"""The API's traces: FastAPI, httpx, SQLAlchemy and Redis spans, and heartbeat sampling.

A job's trace starts at its submit request (jobs.service stores its id and context on the job);
the trainer's callbacks come back into it with a `traceparent` header. A long run sends
thousands of heartbeats: the API traces 1 in `trace_heartbeat_every` of them, whatever the
trainer's sampled flag says (a trainer is untrusted and must not flood the trace store).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine

from trainyard.callbacks.router import HEARTBEAT_PATH
from trainyard.core.listeners import METRICS_PATH
from trainyard.core.settings import BackendSettings
from trainyard.observability.heartbeat_sampling import HEARTBEAT_REQUESTS, OneIn
from trainyard.stream.fanout import EVENT_TYPE_ATTRIBUTE
from trainyard_workflows.telemetry.tracing import configure_tracing, instrument_httpx

# FastAPI's own telemetry stays off: the contrib instrumentation below makes the server spans
# (with the exclusions and sampling here), and the native one would still walk the middleware
# stack on every request to find that out; its exception logs would also carry request bodies.
NATIVE_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}

UNTRACED_PATHS = ("/healthz", "/readyz", METRICS_PATH)

# The callbacks router makes heartbeats' server spans itself (only the sampled ones cost).
HEARTBEAT_ROUTE = HEARTBEAT_PATH
_UNTRACED_BY_ASGI = (*(f"{path}$" for path in UNTRACED_PATHS), "/v1/jobs/[^/]+/heartbeat$")


class HeartbeatSampler(Sampler):
    """Heartbeat spans, whatever the trainer's sampled flag says: a heartbeat's server span is
    made only for the 1 request in N that the router keeps (`HEARTBEAT_REQUESTS`), so it is
    always sampled; 1 relayed heartbeat event in `every` is (0: none). Every other span is
    left to `delegate` (the OTEL_TRACES_SAMPLER choice, parent-based by default)."""

    def __init__(self, delegate: Sampler, every: int) -> None:
        self.delegate = delegate
        self._relays = OneIn(every)

    def sample_every(self, every: int) -> None:
        """From now on, 1 relayed heartbeat in `every` (counting again from the next one)."""
        self._relays.sample_every(every)

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
        if attributes is None:
            heartbeat = None
        elif kind == SpanKind.SERVER:
            heartbeat = attributes.get(HTTP_ROUTE) == HEARTBEAT_ROUTE
        else:
            heartbeat = attributes.get(EVENT_TYPE_ATTRIBUTE) == "heartbeat"
        if not heartbeat:
            return self.delegate.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        keep = kind == SpanKind.SERVER or self._relays.keep()
        parent = trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE if keep else Decision.DROP,
            attributes if keep else None,
            parent.trace_state if parent.is_valid else None,
        )

    def get_description(self) -> str:
        return f"HeartbeatSampler{{1/{self._relays.every},{self.delegate.get_description()}}}"


def instrument_api(app: FastAPI, settings: BackendSettings) -> None:
    """Traces for `app`: configures the process's tracing (once) and instruments the app,
    httpx and Redis. The database engine is instrumented where it is made (`instrument_engine`)."""
    provider = configure_tracing("trainyard-api")
    _sample_heartbeats(provider, settings.trace_heartbeat_every)
    # One server span per request or WebSocket: not a span per message received or sent, and
    # none for probes and scrapes (a trace each, every few seconds, that nobody reads).
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        exclude_spans=["receive", "send"],
        excluded_urls=",".join(_UNTRACED_BY_ASGI),
    )
    instrument_httpx()
    redis = RedisInstrumentor()
    if not redis.is_instrumented_by_opentelemetry:
        redis.instrument()


def _sample_heartbeats(provider: TracerProvider, every: int) -> None:
    # Installed before the app's tracers are made: a tracer keeps the sampler its provider had
    # then, and the provider hands out one tracer per instrumentation, so this process's apps
    # share the sampler (one app in production; the latest one's setting in tests).
    sampler = provider.sampler
    if not isinstance(sampler, HeartbeatSampler):
        sampler = provider.sampler = HeartbeatSampler(sampler, every)
    sampler.sample_every(every)
    HEARTBEAT_REQUESTS.sample_every(every)


def instrument_engine(engine: AsyncEngine) -> None:
    """A span per SQL statement of `engine` (SQLAlchemy's, not the driver's: asyncpg spans
    would double them). Per engine, since the instrumentor's own hook only sees engines made
    through `sqlalchemy.create_engine` after it ran."""
    meter = metrics.get_meter("opentelemetry.instrumentation.sqlalchemy")
    # The instrumentation has no type hints.
    EngineTracer(  # type: ignore[no-untyped-call]
        trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
        engine.sync_engine,
        meter.create_up_down_counter("db.client.connections.usage", unit="connections"),
    )
