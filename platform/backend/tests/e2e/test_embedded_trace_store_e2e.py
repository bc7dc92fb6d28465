"""`trainyard up` makes its MLflow server the trace store (decision 015): the experiment
`trainyard-traces` exists, and the API and the worker, only they, are told to send their spans
to its OTLP endpoint with that experiment's id; the API links a job to its trace there."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.cli.trace_store import TRACES_EXPERIMENT

pytestmark = pytest.mark.xdist_group("e2e")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)


def test_the_api_and_the_worker_send_their_spans_to_the_trace_experiment(
    platform: EmbeddedPlatform,
) -> None:
    mlflow = platform.config.mlflow_url
    found = httpx.get(
        f"{mlflow}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": TRACES_EXPERIMENT},
    )
    assert found.status_code == 200, found.text
    experiment_id = found.json()["experiment"]["experiment_id"]

    environs = {name: _environ(pid) for name, pid in platform.pids.items()}
    for name in ("api", "worker"):
        assert environs[name]["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == f"{mlflow}/v1/traces"
        assert environs[name]["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] == (
            f"x-mlflow-experiment-id={experiment_id}"
        )
    assert environs["api"]["TRAINYARD_TRACE_EXPERIMENT_ID"] == experiment_id
    for name in ("mlflow", "temporal"):
        assert not [variable for variable in environs[name] if variable.startswith("OTEL_")]
