"""configure_tracing: a real TracerProvider always, spans exported by OTLP/HTTP only where an
endpoint is configured, flushed when the process ends. Each case runs a fresh interpreter (the
provider is once per process) against a real OTLP/HTTP receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from trainyard_testing.otlp_receiver import ReceivedSpan, serve_otlp
from trainyard_workflows.telemetry.tracing import exporting

# Configures tracing twice (idempotent: one provider), ends one span, prints its trace id, and
# leaves normally or, with EXIT=os, through os._exit after shutdown_tracing (as the worker does).
SCRIPT = textwrap.dedent(
    """
    import os
    from opentelemetry import trace
    from trainyard_workflows.telemetry.tracing import (
        configure_tracing, current_trace_id, shutdown_tracing,
    )

    provider = configure_tracing("trainyard-worker")
    assert configure_tracing("another-name") is provider
    assert trace.get_tracer_provider() is provider
    tracer = trace.get_tracer("test")
    # Outside any request, a database call starts no trace (NoDatabaseRoots): not exported;
    # an HTTP call does (it carries its context to the service it calls).
    with tracer.start_as_current_span("a call outside a request", kind=trace.SpanKind.CLIENT):
        pass
    with tracer.start_as_current_span(
        "GET", kind=trace.SpanKind.CLIENT, attributes={"http.request.method": "GET"}
    ):
        pass
    with tracer.start_as_current_span("one span", kind=trace.SpanKind.SERVER):
        with tracer.start_as_current_span("a call in a request", kind=trace.SpanKind.CLIENT):
            print(current_trace_id(), flush=True)
    if os.environ.get("EXIT") == "os":
        shutdown_tracing()
        os._exit(0)
    """
)


def run(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def spans_of(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.trace_id == trace_id]


@pytest.mark.parametrize("exit_through", ["return", "os"])
def test_spans_reach_the_configured_endpoint_by_the_time_the_process_ends(
    exit_through: str,
) -> None:
    with serve_otlp() as receiver:
        trace_id = run({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "EXIT": exit_through})

        received = spans_of(receiver.snapshot(), trace_id)

    assert sorted((span.name, span.service_name) for span in received) == [
        ("a call in a request", "trainyard-worker"),
        ("one span", "trainyard-worker"),
    ]
    # The database-like call outside any request made no trace at all; the HTTP call did.
    names = [span.name for span in receiver.snapshot()]
    assert "a call outside a request" not in names
    assert "GET" in names


def test_the_traces_endpoint_and_the_service_name_variables_are_read() -> None:
    with serve_otlp() as receiver:
        trace_id = run(
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
                "OTEL_SERVICE_NAME": "worker-eu-1",
            }
        )

        received = spans_of(receiver.snapshot(), trace_id)

    assert {span.service_name for span in received} == {"worker-eu-1"}


@pytest.mark.parametrize("exporter", ["none", "unset endpoint"])
def test_without_an_exporter_spans_have_trace_ids_and_nothing_is_sent(exporter: str) -> None:
    with serve_otlp() as receiver:
        env = {"OTEL_TRACES_EXPORTER": "none"} if exporter == "none" else {}
        if exporter == "none":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
        trace_id = run(env)

        assert receiver.snapshot() == []

    assert len(trace_id) == 32
    assert int(trace_id, 16) != 0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "None"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp"}, True),
    ],
)
def test_spans_are_exported_only_with_an_endpoint_and_an_exporter(
    environ: dict[str, str], expected: bool
) -> None:
    assert exporting(environ) is expected
