"""A real tiny training's place in the job's trace: the ``trainer.attempt`` span under the
TRACEPARENT it was given, and one client span per callback, each request naming its own span."""

from __future__ import annotations

from pathlib import Path

from conftest import MODEL, trainer_env
from trainer_kit.testing.callback_server import CallbackServer
from trainer_kit.testing.otlp_receiver import OtlpReceiver
from trainer_kit.testing.processes import JOB_ID, run_trainer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
LAUNCH_SPAN_ID = "b7ad6b7169203331"


def test_a_traced_run_exports_its_attempt_and_callback_spans_under_traceparent(
    callback_server: CallbackServer, otlp_receiver: OtlpReceiver, dataset: Path, tmp_path: Path
) -> None:
    env = trainer_env(
        callback_server.url,
        dataset,
        tmp_path / "out",
        tmp_path / "home",
        TRAINYARD_EPOCHS="1",
        TRACEPARENT=f"00-{TRACE_ID}-{LAUNCH_SPAN_ID}-01",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp_receiver.traces_url,
    )

    result = run_trainer(env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    [attempt] = otlp_receiver.named("trainer.attempt")  # exported before the process exited
    assert (attempt.trace_id, attempt.parent_span_id) == (TRACE_ID, LAUNCH_SPAN_ID)
    assert attempt.status == "UNSET"
    assert attempt.service_name == "trainyard-trainer"
    assert {
        key: attempt.attributes[key]
        for key in (
            "trainyard.job_id",
            "trainyard.attempt",
            "trainyard.model",
            "trainyard.framework",
        )
    } == {
        "trainyard.job_id": JOB_ID,
        "trainyard.attempt": 1,
        "trainyard.model": MODEL,
        "trainyard.framework": "timm",
    }

    calls = callback_server.snapshot()
    assert [c.kind for c in calls][-1] == "done"
    # A keep-alive heartbeat (no metrics) carries the attempt's own context: no span of its own.
    keepalives = [c for c in calls if c.kind == "heartbeat" and not c.body.get("metrics")]
    assert keepalives  # the first heartbeat (epoch 0) is one
    for call in keepalives:
        assert call.traceparent == f"00-{TRACE_ID}-{attempt.span_id}-01"
    spanned = [c for c in calls if c not in keepalives]
    spans = {s.span_id: s for s in otlp_receiver.snapshot() if s.name.startswith("callback ")}
    assert len(spans) == len(spanned)
    for call in spanned:
        assert call.traceparent is not None
        span = spans[call.traceparent.split("-")[2]]  # the request names its own span
        assert span.name == f"callback {call.kind}"
        assert (span.trace_id, span.parent_span_id, span.kind) == (
            TRACE_ID,
            attempt.span_id,
            "CLIENT",
        )
        assert attempt.start_ns <= span.start_ns <= span.end_ns <= attempt.end_ns
