"""The embedded tier's trace store (decision 015): the MLflow server `trainyard up` starts takes
spans over OTLP/HTTP into the experiment `trainyard-traces`, and the same trace reads back from
MLflow by its id."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from trainyard.cli.trace_store import (
    TRACES_EXPERIMENT,
    ensure_traces_experiment,
    trace_export_env,
)
from trainyard_testing.mlflow import mlflow_server
from trainyard_testing.mlflow_traces import stored_spans


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as (_, url):
        yield url


def _experiment(mlflow_url: str, experiment_id: str) -> dict[str, str]:
    response = httpx.get(
        f"{mlflow_url}/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id}
    )
    response.raise_for_status()
    experiment: dict[str, str] = response.json()["experiment"]
    return experiment


def test_the_trace_experiment_is_made_once_and_restored_when_deleted(mlflow_url: str) -> None:
    experiment_id = ensure_traces_experiment(mlflow_url)
    assert _experiment(mlflow_url, experiment_id)["name"] == TRACES_EXPERIMENT
    assert ensure_traces_experiment(mlflow_url) == experiment_id

    httpx.post(
        f"{mlflow_url}/api/2.0/mlflow/experiments/delete", json={"experiment_id": experiment_id}
    ).raise_for_status()
    assert _experiment(mlflow_url, experiment_id)["lifecycle_stage"] == "deleted"
    assert ensure_traces_experiment(mlflow_url) == experiment_id
    assert _experiment(mlflow_url, experiment_id)["lifecycle_stage"] == "active"


def test_spans_sent_as_the_platform_sends_them_read_back_from_mlflow(mlflow_url: str) -> None:
    env = trace_export_env(mlflow_url, ensure_traces_experiment(mlflow_url))
    header, experiment_id = env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"].split("=")
    exporter = OTLPSpanExporter(
        endpoint=env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], headers={header: experiment_id}
    )
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "trainyard-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # exported as each span ends
    tracer = provider.get_tracer(__name__)
    with (
        tracer.start_as_current_span("submit") as root,
        tracer.start_as_current_span("launch", attributes={"job.id": "job-1"}) as child,
    ):
        pass
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")

    spans = {span.name: span for span in stored_spans(mlflow_url, trace_id, at_least=2)}
    assert set(spans) == {"submit", "launch"}
    assert spans["submit"].parent_id is None
    assert spans["launch"].parent_id == spans["submit"].span_id
    assert spans["launch"].span_id == format(child.get_span_context().span_id, "016x")
    assert spans["launch"].attributes["job.id"] == "job-1"
