"""The spans of the process under test, kept in memory while a test records them: the API and
the worker run in the test's process, and `configure_tracing` installs one TracerProvider per
process, so one in-memory exporter on it sees them all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trainyard_workflows.telemetry.tracing import configure_tracing


class _Recorder(SimpleSpanProcessor):
    """Exports ended spans only while a test records (a session's spans would fill memory)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        super().__init__(self.exporter)
        self.on = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            super().on_end(span)


_recorder: _Recorder | None = None


def install_tracing() -> _Recorder:
    """Tracing as in every API and worker process, plus the (idle) recorder; once."""
    global _recorder
    if _recorder is None:
        _recorder = _Recorder()
        configure_tracing("trainyard-tests").add_span_processor(_recorder)
    return _recorder


@contextmanager
def recording() -> Iterator[InMemorySpanExporter]:
    """The spans this process ends while the block runs."""
    recorder = install_tracing()
    recorder.exporter.clear()
    recorder.on = True
    try:
        yield recorder.exporter
    finally:
        recorder.on = False
        recorder.exporter.clear()


def trace_of(spans: tuple[ReadableSpan, ...], trace_id: str) -> list[ReadableSpan]:
    """The spans of one trace (`trace_id` as 32 hex digits)."""
    return [span for span in spans if span.context and f"{span.context.trace_id:032x}" == trace_id]
