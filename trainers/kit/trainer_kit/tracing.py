"""The trainer's part of the job's trace: one ``trainer.attempt`` span for the process and a
``traceparent`` header on every callback (docs/trainer-contract.md, "Trace context").

The platform hands the trainer the W3C context of its launch as ``TRACEPARENT`` (and
``TRACESTATE``) and, where traces are collected, the standard OTLP/HTTP exporter variables
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``, their ``*_HEADERS``,
``*_TIMEOUT``; ``OTEL_SERVICE_NAME``, default ``trainyard-trainer``). `start_attempt_trace`
reads them once and picks one of three modes:

* exporting (a valid, sampled TRACEPARENT and an endpoint): the span ``trainer.attempt``, child
  of TRACEPARENT, from the process's start to `AttemptTrace.end`; each callback is a client span
  ``callback <kind>`` under it whose context is the request's ``traceparent``. Spans leave in
  batches from the SDK's thread; `AttemptTrace.end` flushes them before the process exits.
* propagating (no endpoint, ``OTEL_TRACES_EXPORTER=none``, ``OTEL_SDK_DISABLED=true``, or a
  parent that is not sampled): no span at all; every callback carries the inherited context
  unchanged, so the platform's spans hang under the launch, never under a span nobody exported.
* off (TRACEPARENT missing or malformed): no header, no span, never an error.

The tracer provider is the attempt's own, never the global one: a framework's own OpenTelemetry
instrumentation is not switched on by the trainer's. The attempt's context is made current in the
thread that runs the attempt (`AttemptTrace.current`), so a log record there can name its trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final

import psutil  # type: ignore[import-untyped]  # no stubs in the lock (types-psutil)
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.status import Status, StatusCode

log = logging.getLogger("trainyard.trainer.tracing")

TRACE_CONTEXT_VARIABLES: Final = ("TRACEPARENT", "TRACESTATE")
# The OTLP exporters' settings; a trainer's data-parallel workers are not given them
# (trainer_kit/workers.py): they report nothing, the attempt's span is the reporting process's.
EXPORTER_VARIABLE_PREFIX: Final = "OTEL_EXPORTER_OTLP_"
DEFAULT_SERVICE_NAME: Final = "trainyard-trainer"
ATTEMPT_SPAN: Final = "trainer.attempt"
# Attribute names shared with the platform's spans and MLflow tags.
JOB_ID_ATTRIBUTE: Final = "trainyard.job_id"
ATTEMPT_ATTRIBUTE: Final = "trainyard.attempt"
MODEL_ATTRIBUTE: Final = "trainyard.model"
FRAMEWORK_ATTRIBUTE: Final = "trainyard.framework"
CALLBACK_KIND_ATTRIBUTE: Final = "trainyard.callback.kind"

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "trainer_kit"
_ENDPOINT_VARIABLES = (
    f"{EXPORTER_VARIABLE_PREFIX}TRACES_ENDPOINT",
    f"{EXPORTER_VARIABLE_PREFIX}ENDPOINT",
)


class CallbackSpan:
    """One callback request's part of the trace: the headers it is sent with, and its answer."""

    __slots__ = ("_span", "headers")

    def __init__(self, headers: Mapping[str, str], span: trace.Span | None = None) -> None:
        self.headers = headers
        self._span = span

    def answered(self, status_code: int) -> None:
        """Record the HTTP status the platform answered (4xx and 5xx mark the span failed)."""
        if self._span is None:
            return
        self._span.set_attribute("http.response.status_code", status_code)
        if status_code >= 400:
            self._span.set_status(Status(StatusCode.ERROR, f"HTTP {status_code}"))


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class AttemptTrace:
    """This process's place in the job's trace; `OFF` when it has none."""

    def __init__(
        self,
        parent: otel_context.Context | None = None,
        *,
        provider: TracerProvider | None = None,
        span: trace.Span | None = None,
    ) -> None:
        self._provider = provider
        self._span = span
        self._tracer = provider.get_tracer(_TRACER_NAME) if provider is not None else None
        # The context callbacks hang under: the attempt's span, else the inherited one as is;
        # a callback without a span of its own sends that context.
        if span is not None:
            self._context: otel_context.Context | None = trace.set_span_in_context(span)
        else:
            self._context = parent
        self._spanless = CallbackSpan(self._headers_of(self._context))
        self._ended = False

    @staticmethod
    def _headers_of(context: otel_context.Context | None) -> Mapping[str, str]:
        if context is None:
            return _NO_HEADERS
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=context)
        return MappingProxyType(carrier)

    @property
    def exporting(self) -> bool:
        """Whether this process records and exports spans of its own."""
        return self._span is not None

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the attempt's context current in this thread while the block runs."""
        if self._context is None:
            yield
            return
        token = otel_context.attach(self._context)
        try:
            yield
        finally:
            otel_context.detach(token)

    @contextlib.contextmanager
    def callback(
        self, kind: str, attributes: Mapping[str, str] | None = None, *, own_span: bool = True
    ) -> Iterator[CallbackSpan]:
        """The span of one callback request (with its retries): a client span ``callback
        <kind>`` when exporting, else just the inherited ``traceparent`` (or no header).
        ``own_span=False`` (keep-alive heartbeats: hundreds per run, sampled by the platform)
        sends the attempt's own context instead, so the trace stays readable."""
        if self._tracer is None or self._ended or not own_span:
            yield self._spanless
            return
        span = self._tracer.start_span(
            f"callback {kind}",
            context=self._context,
            kind=trace.SpanKind.CLIENT,
            attributes={CALLBACK_KIND_ATTRIBUTE: kind, "http.request.method": "POST"},
        )
        if attributes:
            span.set_attributes(dict(attributes))
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        try:
            yield CallbackSpan(carrier, span)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    def end(
        self,
        *,
        failed: bool,
        exit_code: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End the attempt's span (failed: status error) and export what is not exported yet;
        once only, after ``done`` (a slow collector delays the exit, never the callbacks). The
        wait is bounded by the exporter's timeout (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``, 10 s
        by default)."""
        if self._ended:
            return
        self._ended = True
        if _process.trace is self:
            _process.trace = OFF
        if self._span is None or self._provider is None:
            return
        if exit_code is not None:
            self._span.set_attribute("process.exit.code", exit_code)
        if error is not None:
            self._span.record_exception(error)
        if failed:
            detail = f"{type(error).__name__}: {error}" if error is not None else None
            detail = detail or (f"exit code {exit_code}" if exit_code is not None else None)
            self._span.set_status(Status(StatusCode.ERROR, detail))
        self._span.end()
        self._provider.shutdown()  # exports what is queued


OFF: Final = AttemptTrace()


class _Process:
    """The trace of the attempt this process runs: one per process, as ``trainer.attempt``."""

    trace: AttemptTrace = OFF


_process = _Process()


def active() -> AttemptTrace:
    """The trace of the attempt this process runs (`OFF` when none was started)."""
    return _process.trace


def _inherited_context(environ: Mapping[str, str]) -> otel_context.Context | None:
    """TRACEPARENT/TRACESTATE as a context, or None when TRACEPARENT is missing or malformed."""
    carrier = {
        name.lower(): environ[name].strip() for name in TRACE_CONTEXT_VARIABLES if name in environ
    }
    if not carrier.get("traceparent"):
        return None
    context = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        log.warning("TRACEPARENT is not a W3C traceparent; this attempt is not traced")
        return None
    return context


def _export_configured(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def _process_start_ns() -> int | None:
    """When this process started: the attempt's span includes the interpreter's start-up."""
    try:
        return int(psutil.Process().create_time() * 1e9)  # seconds since the epoch
    except psutil.Error:  # pragma: no cover - /proc unreadable
        return None


def start_attempt_trace(
    *,
    job_id: str,
    attempt: int,
    model: str | None = None,
    framework: str | None = None,
) -> AttemptTrace:
    """Read the trace context and exporter settings from the environment and start this
    process's part of the trace (`OFF` when TRACEPARENT is missing or malformed); it becomes
    `active`, which new callback clients use. End it with `AttemptTrace.end`."""
    environ = os.environ
    parent = _inherited_context(environ)
    if parent is None:
        return OFF
    started = AttemptTrace(parent)
    if (
        _export_configured(environ)
        and trace.get_current_span(parent).get_span_context().trace_flags.sampled
    ):
        # Imported here: the exporter's HTTP stack is not loaded by an attempt that exports nothing.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        named = (
            {}
            if environ.get("OTEL_SERVICE_NAME", "").strip()
            else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
        )
        # Exit without `AttemptTrace.end` (a path that skips it): the SDK's exit hook still
        # exports the callbacks' spans.
        provider = TracerProvider(resource=Resource.create(named))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        attributes: dict[str, str | int] = {JOB_ID_ATTRIBUTE: job_id, ATTEMPT_ATTRIBUTE: attempt}
        if model:
            attributes[MODEL_ATTRIBUTE] = model
        if framework:
            attributes[FRAMEWORK_ATTRIBUTE] = framework
        span = provider.get_tracer(_TRACER_NAME).start_span(
            ATTEMPT_SPAN,
            context=parent,
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_process_start_ns(),
        )
        if span.is_recording():
            started = AttemptTrace(parent, provider=provider, span=span)
        else:  # a sampler (OTEL_TRACES_SAMPLER) said no: propagate the inherited context
            provider.shutdown()
    _process.trace = started
    return started
