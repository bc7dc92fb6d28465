"""One trace per job, end to end: a real tiny training through the real API (uvicorn), Temporal
(the dev server), the worker (every workflow and activity, launching a real trainer process)
and back. The API and the worker run in this process, so the in-memory exporter sees their
spans; the trainer is a process of its own that exports by OTLP/HTTP to a receiver here, with
the exporter variables its worker hands it. The trace holds them all, parent under child:

    POST /v1/jobs (API) > StartWorkflow > RunWorkflow, and StartActivity:x > RunActivity:x
    (temporalio's interceptor hangs a workflow's spans under its start: they take no time)
    RunActivity:launch_trainer > launch trainer > trainer.attempt (trainer) > callback <kind>
    callback <kind> > POST /v1/jobs/{job_id}/<kind> (API) [> ingest heartbeats > bus publish]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from trainyard.core.settings import BackendSettings
from trainyard_testing.otlp_receiver import OtlpReceiver, ReceivedSpan, serve_otlp
from trainyard_testing.spans import trace_of
from trainyard_workflows.activities import TrainingActivities
from trainyard_workflows.activities.admission_activities import AdmissionActivities
from trainyard_workflows.activities.reconcile_activities import ReconcileActivities
from trainyard_workflows.activities.tracking_activities import TrackingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.contracts import workflow_id_for
from trainyard_workflows.launchers.factory import build_launcher
from trainyard_workflows.launchers.launch_span import LAUNCH_SPAN
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.telemetry.tracing import temporal_interceptors
from trainyard_workflows.tracking import build_tracker
from trainyard_workflows.training import TrainingWorkflow
from trainyard_workflows.worker import build_worker, connect_temporal

from .conformance.trainers import REPO, TRAINERS, TrainerCase
from .conftest import LiveServer, make_settings
from .support import INTERNAL_TOKEN

pytestmark = pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)

CASE: TrainerCase = next(case for case in TRAINERS if case.id == "timm")
_RUN_TIMEOUT_S = 240


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """The trainer's collector: the worker passes its own OTEL_EXPORTER_* variables on."""
    with serve_otlp() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{otlp.url}/v1/traces")
        yield otlp


@pytest.fixture
def settings(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> BackendSettings:
    # Every heartbeat traced: the test follows each callback into the API.
    return make_settings(
        tmp_path / "data", temporal_address, trace_heartbeat_every=1, **backend_tier
    )


@pytest.fixture
async def worker(
    tmp_path: Path, settings: BackendSettings, live_server: LiveServer
) -> AsyncIterator[None]:
    """The real worker, as `trainyard-worker` builds it, launching trainer processes."""
    if not CASE.executable.exists():
        pytest.fail(f"the timm trainer is not installed ({CASE.executable}): run `make trainers`")
    worker_settings = WorkerSettings(
        temporal_address=settings.temporal_address,
        temporal_namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
        backend_url=live_server.http_url,
        internal_token=INTERNAL_TOKEN,
        data_dir=tmp_path / "worker",
        trainers_dir=REPO / "trainers",
        launcher="subprocess",
        mlflow_tracking_uri=None,
        watch_poll_s=0.2,
        keepalive_s=2.0,
    )
    client = await connect_temporal(worker_settings)
    launcher = build_launcher(worker_settings)
    try:
        async with BackendClient(worker_settings.backend_url, INTERNAL_TOKEN) as backend:
            activities = TrainingActivities(backend, launcher, worker_settings)
            tracking = TrackingActivities(backend, build_tracker(worker_settings), worker_settings)
            reconcile = ReconcileActivities(backend, launcher)
            async with build_worker(
                client,
                worker_settings,
                activities,
                tracking,
                reconcile,
                AdmissionActivities(backend),
            ):
                yield
    finally:
        await launcher.aclose()


async def _finished(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(_RUN_TIMEOUT_S * 5):
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}")).json()
        if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job
        await asyncio.sleep(0.2)
    pytest.fail(f"job {job_id} did not finish in {_RUN_TIMEOUT_S}s")


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, (name, sorted(span.name for span in spans))
    return matching[0]


def _id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format_span_id(span.context.span_id)


def _parent_id(span: ReadableSpan) -> str | None:
    return format_span_id(span.parent.span_id) if span.parent is not None else None


async def test_one_trace_follows_a_job_from_its_submission_through_the_trainer_and_back(
    tmp_path: Path,
    live_server: LiveServer,
    worker: None,
    receiver: OtlpReceiver,
    spans: InMemorySpanExporter,
    settings: BackendSettings,
) -> None:
    dataset = CASE.make_dataset(tmp_path / "dataset")
    async with httpx.AsyncClient(base_url=live_server.http_url, timeout=30) as api:
        response = await api.post("/v1/jobs", json=CASE.job_body(dataset.as_uri(), epochs=1))
        assert response.status_code == 201, response.text
        job = await _finished(api, response.json()["id"])
    assert job["state"] == "SUCCEEDED", job["reason"]
    trace_id = job["trace_id"]
    assert len(trace_id) == 32

    # The trainer's spans: its attempt, and each callback as a client span under it.
    assert receiver.wait_for(lambda got: any(s.name == "callback done" for s in got), 30), [
        span.name for span in receiver.snapshot()
    ]
    trainer = [span for span in receiver.snapshot() if span.trace_id == trace_id]
    attempt = next(span for span in trainer if span.name == "trainer.attempt")
    callbacks = [span for span in trainer if span.name.startswith("callback ")]
    assert {span.name for span in callbacks} >= {"callback heartbeat", "callback done"}
    assert all(span.parent_span_id == attempt.span_id for span in callbacks)

    # The platform's spans: the API and the worker, this process.
    history = await _history(job["id"], settings)
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    }
    # An activity's span ends with it: the watch, cancelled once the workflow decided, ends last.
    platform = await _spans_once_ended(spans, trace_id, {f"RunActivity:{n}" for n in scheduled})
    submit = _one(platform, "POST /v1/jobs")
    assert submit.kind == SpanKind.SERVER
    start = _one(platform, "StartWorkflow:TrainingWorkflow")
    assert _parent_id(start) == _id(submit)
    run = _one(platform, "RunWorkflow:TrainingWorkflow")
    assert _parent_id(run) == _id(start)

    # Every activity the workflow ran, under the workflow's start.
    assert {"validate_dataset", "launch_trainer", "watch_trainer"} <= scheduled
    for name in scheduled:
        ran = [span for span in platform if span.name == f"RunActivity:{name}"]
        asked = {_id(span) for span in platform if span.name == f"StartActivity:{name}"}
        assert ran, name
        assert all(_parent_id(span) in asked for span in ran), name
        assert all(_parent_id(span) == _id(start) for span in platform if _id(span) in asked)

    # The launch, and the trainer under it.
    launch = _one(platform, LAUNCH_SPAN)
    assert _parent_id(launch) == _id(_one(platform, "RunActivity:launch_trainer"))
    assert attempt.parent_span_id == _id(launch)

    # Each callback came back into the API under the trainer's client span.
    served = _served_callbacks(platform, callbacks)
    assert {"heartbeat", "done"} <= set(served)
    beat = served["heartbeat"][0]
    assert any(
        _parent_id(span) == _id(beat) for span in platform if span.name == "ingest heartbeats"
    )
    assert any(span.name == "bus publish" for span in platform)

    # Replay stays deterministic with the interceptors on a history that carries a trace.
    replayer = Replayer(workflows=[TrainingWorkflow], interceptors=temporal_interceptors())
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


async def _spans_once_ended(
    spans: InMemorySpanExporter, trace_id: str, names: set[str]
) -> list[ReadableSpan]:
    for _ in range(150):
        ended = trace_of(spans.get_finished_spans(), trace_id)
        if names <= {span.name for span in ended}:
            return ended
        await asyncio.sleep(0.2)
    return ended


async def _history(job_id: str, settings: BackendSettings) -> WorkflowHistory:
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    handle = client.get_workflow_handle(workflow_id_for(job_id))
    await asyncio.wait_for(handle.result(), 60)  # its last activities end after the job's state
    history: WorkflowHistory = await handle.fetch_history()
    return history


def _served_callbacks(
    platform: list[ReadableSpan], callbacks: list[ReceivedSpan]
) -> dict[str, list[ReadableSpan]]:
    """The API's server span of each trainer callback, by kind (heartbeat, event, done)."""
    by_client = {span.span_id: span.name.removeprefix("callback ") for span in callbacks}
    served: dict[str, list[ReadableSpan]] = {}
    for span in platform:
        kind = by_client.get(_parent_id(span) or "")
        if kind is not None and span.kind == SpanKind.SERVER:
            served.setdefault(kind, []).append(span)
    return served
