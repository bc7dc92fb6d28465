"""The API's traces: a job's trace starts at its submit request and its id is stored on the job;
the workflow start (by the request, or later by the sweep) continues it; heartbeat requests are
sampled 1 in N whatever the trainer's sampled flag says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, ParentBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadConverter
from temporalio.testing import WorkflowEnvironment

from trainyard.cli.embedded import free_local_port
from trainyard.cli.platform_calls import print_summary
from trainyard.core.temporal import TemporalGateway
from trainyard.jobs.workflow_starter import WorkflowStarter
from trainyard.main import create_app
from trainyard.observability.heartbeat_sampling import OneIn
from trainyard.observability.tracing import HEARTBEAT_ROUTE, UNTRACED_PATHS, HeartbeatSampler
from trainyard.runtime import Runtime
from trainyard.stream.fanout import EVENT_TYPE_ATTRIBUTE
from trainyard_testing.spans import trace_of
from trainyard_workflows.contracts import workflow_id_for

from .conftest import make_settings
from .support import heartbeat, serving, start_attempt, submit

# A trainer's trace: its callbacks' `traceparent` names this span.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = 0x00F067AA0BA902B7


def _parent(sampled: bool) -> Any:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(int(TRACE_ID, 16), PARENT_SPAN_ID, is_remote=True, trace_flags=flags)
    return set_span_in_context(NonRecordingSpan(context))


def _heartbeat_decisions(sampler: HeartbeatSampler, count: int, sampled_parent: bool) -> list[bool]:
    return [
        sampler.should_sample(
            _parent(sampled_parent),
            int(TRACE_ID, 16),
            f"POST {HEARTBEAT_ROUTE}",
            SpanKind.SERVER,
            {"http.route": HEARTBEAT_ROUTE},
        ).decision
        == Decision.RECORD_AND_SAMPLE
        for _ in range(count)
    ]


def test_one_heartbeat_request_in_n_is_kept() -> None:
    one_in_four = OneIn(4)

    assert [one_in_four.keep() for _ in range(12)] == [True, False, False, False] * 3


def test_no_heartbeat_request_is_kept_with_every_zero() -> None:
    assert [OneIn(0).keep() for _ in range(5)] == [False] * 5


@pytest.mark.parametrize("sampled_parent", [True, False])
def test_a_kept_heartbeat_request_is_sampled_whatever_the_caller_says(
    sampled_parent: bool,
) -> None:
    sampler = HeartbeatSampler(ParentBased(ALWAYS_OFF), every=4)

    assert _heartbeat_decisions(sampler, 3, sampled_parent) == [True] * 3


@pytest.mark.parametrize("sampled_parent", [True, False])
def test_other_requests_follow_their_parent(sampled_parent: bool) -> None:
    sampler = HeartbeatSampler(ParentBased(ALWAYS_OFF), every=1)

    result = sampler.should_sample(
        _parent(sampled_parent),
        int(TRACE_ID, 16),
        "POST /v1/jobs/{job_id}/event",
        SpanKind.SERVER,
        {"http.route": "/v1/jobs/{job_id}/event"},
    )

    assert (result.decision == Decision.RECORD_AND_SAMPLE) is sampled_parent


def test_relayed_heartbeat_events_are_sampled_like_heartbeat_requests() -> None:
    sampler = HeartbeatSampler(ParentBased(ALWAYS_OFF), every=2)

    decisions = [
        sampler.should_sample(
            _parent(True),
            int(TRACE_ID, 16),
            "stream relay",
            attributes={EVENT_TYPE_ATTRIBUTE: kind},
        ).decision
        == Decision.RECORD_AND_SAMPLE
        for kind in ("heartbeat", "heartbeat", "heartbeat", "metric")
    ]

    assert decisions == [True, False, True, True]


def _named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, [span.name for span in spans]
    return matching[0]


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


async def test_a_submitted_job_carries_the_trace_its_request_started_and_its_workflow_joins_it(
    api: httpx.AsyncClient, job_body: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    job = await submit(api, job_body)

    assert len(job["trace_id"]) == 32
    assert int(job["trace_id"], 16) != 0
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["trace_id"] == job["trace_id"]
    trace = trace_of(spans.get_finished_spans(), job["trace_id"])
    request = _named(trace, "POST /v1/jobs")
    assert request.parent is None
    assert request.kind == SpanKind.SERVER
    start = _named(trace, "StartWorkflow:TrainingWorkflow")
    assert start.parent is not None
    assert start.parent.span_id == _span_id(request)
    # SQLAlchemy's statements are in it (the engine is instrumented), and not the driver's.
    statements = [span for span in trace if span.attributes and "db.statement" in span.attributes]
    assert statements
    assert all(span.parent is not None for span in statements)


async def test_the_sweep_starts_a_lost_workflow_in_the_jobs_trace(
    tmp_path: Path,
    job_body: dict[str, Any],
    backend_tier: dict[str, object],
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
    spans: InMemorySpanExporter,
) -> None:
    # Temporal is unreachable at submission (nothing listens on a port that was just free).
    down = make_settings(tmp_path / "data", f"127.0.0.1:{free_local_port()}", **backend_tier)
    app = create_app(down)
    async with serving(app) as client:
        job = await submit(client, job_body)
        runtime: Runtime = app.state.runtime
        reachable = TemporalGateway(temporal_address, "default", 5.0)
        settings = down.model_copy(update={"workflow_start_grace_s": 0.0})
        spans.clear()

        await WorkflowStarter(runtime.db, reachable, settings).sweep()

    handle = temporal_env.client.get_workflow_handle(workflow_id_for(job["id"]))
    try:
        history: WorkflowHistory = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        carrier = PayloadConverter.default.from_payloads([started.header.fields["_tracer-data"]])[0]
        assert carrier["traceparent"].split("-")[1] == job["trace_id"]
        trace = trace_of(spans.get_finished_spans(), job["trace_id"])
        start = _named(trace, "StartWorkflow:TrainingWorkflow")
        assert start.parent is not None
        assert start.parent.is_remote
    finally:
        await handle.terminate()


async def test_heartbeats_are_traced_one_in_n_and_other_callbacks_always(
    tmp_path: Path,
    temporal_address: str,
    backend_tier: dict[str, object],
    job_body: dict[str, Any],
    spans: InMemorySpanExporter,
) -> None:
    settings = make_settings(
        tmp_path / "data", temporal_address, trace_heartbeat_every=3, **backend_tier
    )
    async with serving(create_app(settings)) as client:
        job = await submit(client, job_body)
        token = await start_attempt(client, job["id"])

        async def trainer_says(kind: str, body: dict[str, Any], flags: str) -> None:
            headers = {
                "Authorization": f"Bearer {token}",
                "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID:016x}-{flags}",
            }
            response = await client.post(f"/v1/jobs/{job['id']}/{kind}", json=body, headers=headers)
            assert response.status_code == 202, response.text

        for _ in range(6):
            await trainer_says("heartbeat", heartbeat(1), flags="01")
        await trainer_says("event", {"type": "warning", "message": "hot"}, flags="00")

    caller = trace_of(spans.get_finished_spans(), TRACE_ID)
    beats = [span for span in caller if span.name == f"POST {HEARTBEAT_ROUTE}"]
    assert len(beats) == 2  # the 1st and the 4th of 6
    assert all(span.parent is not None and span.parent.span_id == PARENT_SPAN_ID for span in beats)
    # A sampled heartbeat's batch is stored under it.
    ingest = [span for span in caller if span.name == "ingest heartbeats"]
    assert ingest
    assert {span.parent.span_id for span in ingest if span.parent} <= {
        _span_id(span) for span in beats
    }
    # The event callback's caller said "not sampled": that is followed for everything else.
    assert not [span for span in caller if "event" in span.name]


def test_the_cli_job_summary_names_the_jobs_trace(capsys: pytest.CaptureFixture[str]) -> None:
    job = {"id": "job_1", "state": "SUCCEEDED", "trace_id": TRACE_ID}

    print_summary(job)

    assert f"trace: {TRACE_ID}" in capsys.readouterr().out


async def test_probes_and_scrapes_make_no_trace(
    api: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    for path in UNTRACED_PATHS:
        await api.get(path)
    await api.get("/v1/frameworks")

    served = [span.name for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]

    assert served == ["GET /v1/frameworks"]
