"""A job links to its trace in MLflow's UI, the embedded tier's trace store
(observability/trace_links.py): the traces tab of the trace experiment with the trace open, only
where the API knows both the experiment and an address a browser may open."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from trainyard.core.settings import BackendSettings
from trainyard.observability.trace_links import trace_url

from .support import submit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
MLFLOW = "http://127.0.0.1:5000"


def _linked(settings: BackendSettings, **update: object) -> BackendSettings:
    values = {"mlflow_tracking_uri": MLFLOW, "mlflow_ui_url": None, "trace_experiment_id": "7"}
    return settings.model_copy(update={**values, **update})


@pytest.fixture
def settings(settings: BackendSettings) -> BackendSettings:
    return _linked(settings)


def test_the_link_opens_the_trace_in_its_experiments_traces_tab(settings: BackendSettings) -> None:
    assert trace_url(settings, TRACE_ID) == (
        f"{MLFLOW}/#/experiments/7/traces?selectedEvaluationId=tr-{TRACE_ID}&traceId=tr-{TRACE_ID}"
    )
    ui = _linked(settings, mlflow_ui_url="https://mlflow.example/")
    assert (trace_url(ui, TRACE_ID) or "").startswith("https://mlflow.example/#/experiments/7/")


@pytest.mark.parametrize(
    "update",
    [
        {"trace_experiment_id": None},  # traces go elsewhere
        {"mlflow_tracking_uri": "http://mlflow.mlflow.svc:5000"},  # no address for a browser
        {"mlflow_tracking_uri": None},
    ],
)
def test_no_link_without_the_experiment_or_an_address_users_open(
    settings: BackendSettings, update: dict[str, object]
) -> None:
    assert trace_url(_linked(settings, **update), TRACE_ID) is None
    assert trace_url(settings, None) is None  # a job submitted before tracing


async def test_job_reads_carry_the_link_to_the_jobs_trace(
    api: httpx.AsyncClient, job_body: dict[str, Any], settings: BackendSettings
) -> None:
    job = await submit(api, job_body)
    expected = trace_url(settings, job["trace_id"])
    assert expected is not None
    assert job["trace_url"] == expected
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["trace_url"] == expected
    listed = (await api.get("/v1/jobs")).json()["items"]
    assert [item["trace_url"] for item in listed] == [expected]
