"""trainer_kit.tracing: the attempt's span, the ``traceparent`` of every callback, and the spans a
real OTLP/HTTP receiver gets from a trainer-like process before it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_kit import tracing
from trainer_kit.callbacks import CallbackClient, CallbackRefused
from trainer_kit.outcome import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.otlp_receiver import OtlpReceiver, ReceivedSpan

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
LAUNCH_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{LAUNCH_SPAN_ID}-01"
TRACESTATE = "trainyard=launch,vendor=x"
# Every variable the kit's tracing reads: none leaks in from the environment of the test run.
TRACING_VARIABLES = (
    "TRACEPARENT",
    "TRACESTATE",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in TRACING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    tracing.active().end(failed=False)  # a test that failed half-way leaves none behind


def _start() -> tracing.AttemptTrace:
    return tracing.start_attempt_trace(
        job_id="job_1", attempt=2, model="resnet18", framework="timm"
    )


def _send_all(server: CallbackServer) -> None:
    with CallbackClient(server.url, "job_1", "tok", sleep=lambda _: None) as client:
        client.heartbeat(epoch=1, epochs=2, metrics={"loss": 0.5}, elapsed_s=0.1, eta_s=None)
        client.event("checkpoint_saved", "epoch 1", {"epoch": 1})
        client.done("succeeded", metrics={}, artifacts={})


def _only(spans: list[ReceivedSpan]) -> ReceivedSpan:
    assert len(spans) == 1, spans
    return spans[0]


def test_without_traceparent_there_is_no_trace_and_no_header(
    monkeypatch: pytest.MonkeyPatch, callback_server: CallbackServer, otlp_receiver: OtlpReceiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)

    trace = _start()
    _send_all(callback_server)
    trace.end(failed=False, exit_code=EXIT_OK)

    assert trace is tracing.OFF
    assert [(c.traceparent, c.tracestate) for c in callback_server.snapshot()] == [(None, None)] * 3
    assert otlp_receiver.snapshot() == []


@pytest.mark.parametrize(
    "traceparent",
    [
        "not a traceparent",
        f"00-{TRACE_ID}-{LAUNCH_SPAN_ID}",  # no flags
        f"00-{'0' * 32}-{LAUNCH_SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-{LAUNCH_SPAN_ID}-01",  # W3C ids are lowercase
        f"ff-{TRACE_ID}-{LAUNCH_SPAN_ID}-01",  # the forbidden version
        "",
    ],
)
def test_a_malformed_traceparent_means_no_tracing_and_no_header(
    monkeypatch: pytest.MonkeyPatch,
    callback_server: CallbackServer,
    otlp_receiver: OtlpReceiver,
    traceparent: str,
) -> None:
    monkeypatch.setenv("TRACEPARENT", traceparent)
    monkeypatch.setenv("TRACESTATE", TRACESTATE)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)

    trace = _start()
    _send_all(callback_server)
    trace.end(failed=False, exit_code=EXIT_OK)

    assert trace is tracing.OFF
    assert {c.status for c in callback_server.snapshot()} == {202}
    assert {(c.traceparent, c.tracestate) for c in callback_server.snapshot()} == {(None, None)}
    assert otlp_receiver.snapshot() == []


@pytest.mark.parametrize(
    ("extra", "traceparent"),
    [
        ({}, TRACEPARENT),  # no endpoint configured
        ({"OTEL_TRACES_EXPORTER": "none"}, TRACEPARENT),
        ({"OTEL_SDK_DISABLED": "true"}, TRACEPARENT),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, TRACEPARENT),
        ({}, TRACEPARENT[:-2] + "00"),  # the launch is not sampled: nothing to hang spans on
    ],
    ids=["no-endpoint", "exporter-none", "sdk-disabled", "sampler-off", "not-sampled"],
)
def test_without_an_exporter_callbacks_carry_the_inherited_context_unchanged(
    monkeypatch: pytest.MonkeyPatch,
    callback_server: CallbackServer,
    otlp_receiver: OtlpReceiver,
    extra: dict[str, str],
    traceparent: str,
) -> None:
    monkeypatch.setenv("TRACEPARENT", traceparent)
    monkeypatch.setenv("TRACESTATE", TRACESTATE)
    if extra:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)

    trace = _start()
    _send_all(callback_server)
    trace.end(failed=True, exit_code=EXIT_FAILED)

    assert not trace.exporting
    calls = callback_server.snapshot()
    assert [c.kind for c in calls] == ["heartbeat", "event", "done"]
    assert {(c.traceparent, c.tracestate) for c in calls} == {(traceparent, TRACESTATE)}
    assert otlp_receiver.snapshot() == []


def test_each_callback_is_a_client_span_under_the_attempt_span_under_traceparent(
    monkeypatch: pytest.MonkeyPatch, callback_server: CallbackServer, otlp_receiver: OtlpReceiver
) -> None:
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    monkeypatch.setenv("TRACESTATE", TRACESTATE)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)  # + /v1/traces
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-mlflow-experiment-id=7")

    trace = _start()
    assert trace.exporting
    assert tracing.active() is trace
    _send_all(callback_server)
    trace.end(failed=False, exit_code=EXIT_OK)  # exports before it returns
    assert tracing.active() is tracing.OFF

    attempt = _only(otlp_receiver.named("trainer.attempt"))
    assert (attempt.trace_id, attempt.parent_span_id) == (TRACE_ID, LAUNCH_SPAN_ID)
    assert attempt.kind == "INTERNAL"
    assert attempt.status == "UNSET"
    assert attempt.service_name == "trainyard-trainer"
    assert attempt.attributes == {
        "trainyard.job_id": "job_1",
        "trainyard.attempt": 2,
        "trainyard.model": "resnet18",
        "trainyard.framework": "timm",
        "process.exit.code": 0,
    }
    assert attempt.request_headers["x-mlflow-experiment-id"] == "7"

    calls = callback_server.snapshot()
    spans = [_only(otlp_receiver.named(f"callback {c.kind}")) for c in calls]
    for call, span in zip(calls, spans, strict=True):
        assert (span.trace_id, span.parent_span_id) == (TRACE_ID, attempt.span_id)
        assert span.kind == "CLIENT"
        assert call.traceparent == span.traceparent  # the request names its own span
        assert call.tracestate == TRACESTATE
        assert span.attributes["http.response.status_code"] == 202
        assert span.attributes["trainyard.callback.kind"] == call.kind
        assert attempt.start_ns <= span.start_ns <= span.end_ns <= attempt.end_ns
    assert spans[1].attributes["trainyard.event.type"] == "checkpoint_saved"
    assert spans[2].attributes["trainyard.done.status"] == "succeeded"


def test_a_keepalive_heartbeat_carries_the_attempt_context_without_a_span_of_its_own(
    monkeypatch: pytest.MonkeyPatch, callback_server: CallbackServer, otlp_receiver: OtlpReceiver
) -> None:
    # Hundreds per run: the platform samples their server spans under the attempt's span.
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)

    trace = _start()
    with CallbackClient(callback_server.url, "job_1", "tok", sleep=lambda _: None) as client:
        client.heartbeat(epoch=0, epochs=2, metrics=None, elapsed_s=0.1, eta_s=None)
    trace.end(failed=False, exit_code=EXIT_OK)

    attempt = _only(otlp_receiver.named("trainer.attempt"))
    assert otlp_receiver.named("callback heartbeat") == []
    (call,) = callback_server.snapshot()
    assert call.traceparent == f"00-{TRACE_ID}-{attempt.span_id}-01"


def test_a_refused_callback_and_a_failed_attempt_are_errors_in_the_trace(
    monkeypatch: pytest.MonkeyPatch, callback_server: CallbackServer, otlp_receiver: OtlpReceiver
) -> None:
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-trainer")
    callback_server.responder = lambda kind, body: 409

    trace = _start()
    with (
        CallbackClient(callback_server.url, "job_1", "tok") as client,
        pytest.raises(CallbackRefused),
    ):
        client.event("log", "hello")
    trace.end(failed=True, exit_code=EXIT_FAILED)

    event = _only(otlp_receiver.named("callback event"))
    assert (event.status, event.attributes["http.response.status_code"]) == ("ERROR", 409)
    attempt = _only(otlp_receiver.named("trainer.attempt"))
    assert (attempt.status, attempt.status_message) == ("ERROR", "exit code 1")
    assert attempt.service_name == "my-trainer"


def test_a_trace_ends_once_and_callbacks_after_it_only_propagate(
    monkeypatch: pytest.MonkeyPatch, callback_server: CallbackServer, otlp_receiver: OtlpReceiver
) -> None:
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)
    trace = _start()
    with CallbackClient(callback_server.url, "job_1", "tok") as client:
        trace.end(failed=False, exit_code=EXIT_OK)
        trace.end(failed=True, exit_code=EXIT_FAILED)  # no effect
        client.event("log", "late")

    attempt = _only(otlp_receiver.snapshot())
    assert (attempt.name, attempt.status) == ("trainer.attempt", "UNSET")
    # Its parent is the attempt's span, which was exported: no dangling parent.
    assert callback_server.snapshot()[0].traceparent == attempt.traceparent


# A trainer-like process: the kit's entrypoint, one heartbeat, then done; "sigterm" waits for the
# platform's SIGTERM first, "failed" reports a failure, "raises" lets an exception escape.
TRAINER = textwrap.dedent(
    """
    import sys, time
    from trainer_kit.control import StopFlag
    from trainer_kit.entrypoint import run_entrypoint
    from trainer_kit.outcome import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK
    from trainer_kit.settings import ContractSettings, read_settings

    def attempt(settings: ContractSettings, stop: StopFlag) -> int:
        with settings.callback_client() as client:
            client.heartbeat(epoch=1, epochs=1, metrics={"loss": 1.0}, elapsed_s=0.0, eta_s=0.0)
            if sys.argv[1] == "raises":
                raise RuntimeError("boom")
            if sys.argv[1] == "sigterm":
                while not stop.cancel_requested:
                    time.sleep(0.02)
                client.done("cancelled", reason="stopped by SIGTERM")
                return EXIT_CANCELLED
            status = "failed" if sys.argv[1] == "failed" else "succeeded"
            client.done(status)
            return EXIT_FAILED if status == "failed" else EXIT_OK

    sys.exit(run_entrypoint(lambda: read_settings(ContractSettings), attempt, framework="test"))
    """
)


def _trainer_env(server: CallbackServer, receiver: OtlpReceiver, tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRAINYARD_", "OTEL_", "PYTEST_")) and k not in TRACING_VARIABLES
    }
    env.update(
        TRAINYARD_JOB_ID="job_sub",
        TRAINYARD_ATTEMPT="3",
        TRAINYARD_CALLBACK_URL=server.url,
        TRAINYARD_CALLBACK_TOKEN="tok",
        TRAINYARD_MODEL="tiny",
        TRAINYARD_DATASET_URI="file:///data",
        TRAINYARD_OUTPUT_DIR=str(tmp_path / "out"),
        TRAINYARD_EPOCHS="1",
        TRACEPARENT=TRACEPARENT,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.traces_url,
        # Nothing leaves on the batch processor's schedule: only the exit's flush sends spans.
        OTEL_BSP_SCHEDULE_DELAY="600000",
    )
    return env


@pytest.mark.parametrize(
    "case",
    [
        ("succeeded", EXIT_OK, "UNSET"),
        ("failed", EXIT_FAILED, "ERROR"),
        ("raises", 1, "ERROR"),
        ("sigterm", EXIT_CANCELLED, "UNSET"),
    ],
    ids=lambda case: str(case[0]),
)
def test_the_trainer_process_exports_its_spans_before_it_exits(
    callback_server: CallbackServer,
    otlp_receiver: OtlpReceiver,
    tmp_path: Path,
    case: tuple[str, int, str],
) -> None:
    mode, exit_code, status = case
    script = tmp_path / "trainer_like.py"
    script.write_text(TRAINER, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        env=_trainer_env(callback_server, otlp_receiver, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        if mode == "sigterm":
            assert callback_server.wait_for(lambda calls: len(calls) >= 1, timeout=60)
            proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == exit_code, output

    # Already there when the process is gone: nothing is awaited here.
    attempt = _only(otlp_receiver.named("trainer.attempt"))
    assert (attempt.trace_id, attempt.parent_span_id) == (TRACE_ID, LAUNCH_SPAN_ID)
    assert attempt.status == status
    assert attempt.attributes["trainyard.job_id"] == "job_sub"
    assert attempt.attributes["trainyard.attempt"] == 3
    assert attempt.attributes["trainyard.framework"] == "test"
    calls = callback_server.snapshot()
    assert [c.kind for c in calls] == ["heartbeat"] if mode == "raises" else ["heartbeat", "done"]
    for call in calls:
        span = _only(otlp_receiver.named(f"callback {call.kind}"))
        assert (span.trace_id, span.parent_span_id) == (TRACE_ID, attempt.span_id)
        assert call.traceparent == span.traceparent
    if mode == "raises":
        assert attempt.status_message == "RuntimeError: boom"
    else:
        assert attempt.attributes["process.exit.code"] == exit_code
