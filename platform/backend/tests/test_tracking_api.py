"""The worker records where a job is tracked; the job response links to its MLflow run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from trainyard.core.settings import BackendSettings

from .support import INTERNAL_HEADERS, callback, get_job, heartbeat, start_attempt, submit

UI_URL = "https://mlflow.example.com"


@pytest.fixture
def settings(settings: BackendSettings) -> BackendSettings:
    # The worker reaches MLflow inside the cluster; users open it through an ingress.
    return settings.model_copy(
        update={"mlflow_tracking_uri": "http://mlflow:5000", "mlflow_ui_url": f"{UI_URL}/"}
    )


@pytest.fixture
async def job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> dict[str, Any]:
    return await submit(api, job_body)


async def _record(api: httpx.AsyncClient, job_id: str, body: dict[str, Any]) -> httpx.Response:
    return await api.post(
        f"/internal/v1/jobs/{job_id}/tracking", json=body, headers=INTERNAL_HEADERS
    )


async def test_a_new_job_has_no_tracking_yet(job: dict[str, Any]) -> None:
    assert job["tracking"] is None


async def test_recorded_run_is_linked_from_the_job_through_the_mlflow_ui_url(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    response = await _record(
        api, job["id"], {"mlflow_run_id": "abc123", "mlflow_experiment_id": "7"}
    )

    assert response.status_code == 200, response.text
    assert (await get_job(api, job["id"]))["tracking"] == {
        "mlflow_run_id": "abc123",
        "mlflow_experiment_id": "7",
        "mlflow_run_url": f"{UI_URL}/#/experiments/7/runs/abc123",
        "model_name": None,
        "model_version": None,
    }


async def test_a_model_version_recorded_later_keeps_the_run_link(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    await _record(api, job["id"], {"mlflow_run_id": "abc123", "mlflow_experiment_id": "7"})

    await _record(
        api,
        job["id"],
        {
            "mlflow_run_id": "abc123",
            "model_name": "trainyard-ultralytics-yolo11n",
            "model_version": "3",
        },
    )

    tracking = (await get_job(api, job["id"]))["tracking"]
    assert tracking["mlflow_run_url"] == f"{UI_URL}/#/experiments/7/runs/abc123"
    assert (tracking["model_name"], tracking["model_version"]) == (
        "trainyard-ultralytics-yolo11n",
        "3",
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mlflow_run_id": "../../etc"},
        {"mlflow_run_id": "abc", "unknown": 1},
        {"mlflow_run_id": "abc", "model_version": ""},
    ],
)
async def test_malformed_tracking_is_refused(
    api: httpx.AsyncClient, job: dict[str, Any], body: dict[str, Any]
) -> None:
    response = await _record(api, job["id"], body)

    assert response.status_code == 422
    assert (await get_job(api, job["id"]))["tracking"] is None


@pytest.mark.parametrize(
    ("method", "path"), [("GET", ""), ("GET", "/events"), ("POST", "/tracking")]
)
async def test_tracking_routes_need_the_internal_token(
    api: httpx.AsyncClient, job: dict[str, Any], method: str, path: str
) -> None:
    response = await api.request(
        method, f"/internal/v1/jobs/{job['id']}{path}", json={"mlflow_run_id": "abc"}
    )

    assert response.status_code == 401


async def test_tracking_of_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    response = await _record(api, "job_missing", {"mlflow_run_id": "abc"})

    assert response.status_code == 404


async def test_internal_events_after_a_seq_give_the_heartbeats_the_sync_has_not_seen(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    token = await start_attempt(api, job["id"])
    for epoch in (1, 2):
        beat = heartbeat(epoch, metrics__mAP50=0.1 * epoch)
        assert (await callback(api, job["id"], "heartbeat", token, beat)).status_code == 202
    everything = await api.get(f"/internal/v1/jobs/{job['id']}/events", headers=INTERNAL_HEADERS)
    first_beat = next(e for e in everything.json()["items"] if e["type"] == "heartbeat")

    response = await api.get(
        f"/internal/v1/jobs/{job['id']}/events",
        params={"after_seq": first_beat["seq"]},
        headers=INTERNAL_HEADERS,
    )

    assert response.status_code == 200
    page = response.json()
    assert [(e["type"], e["data"]["epoch"]) for e in page["items"]] == [("heartbeat", 2)]
    assert page["last_seq"] == page["items"][-1]["seq"]


async def test_the_worker_reads_a_job_whoever_owns_it(
    api: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    response = await api.get(f"/internal/v1/jobs/{job['id']}", headers=INTERNAL_HEADERS)

    assert response.status_code == 200
    assert response.json()["id"] == job["id"]
