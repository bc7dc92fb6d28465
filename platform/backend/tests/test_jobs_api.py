"""The public jobs API over HTTP: submission, reading, pagination, idempotency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from trainyard.core.settings import BackendSettings
from trainyard_workflows.contracts import TrainingInput, workflow_id_for

from .support import submit


async def test_a_submitted_job_is_pending_and_readable_at_once(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)

    assert job["id"].startswith("job_")
    assert job["state"] == "PENDING"
    assert job["attempt"] == 0
    assert job["dataset"] == job_body["dataset"]
    assert job["dataset_uri"] == job_body["dataset"]
    assert job["hyperparameters"] == {"workers": 0, "lr0": 0.01}
    assert job["progress"] is None
    assert job["result"] is None
    fetched = await api.get(f"/v1/jobs/{job['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == job


async def test_submission_starts_the_training_workflow_with_the_resolved_input(
    api: httpx.AsyncClient,
    job_body: dict[str, Any],
    temporal_env: WorkflowEnvironment,
    settings: BackendSettings,
) -> None:
    job = await submit(api, job_body)

    handle = temporal_env.client.get_workflow_handle(workflow_id_for(job["id"]))
    description = await handle.describe()
    assert description.workflow_type == "TrainingWorkflow"
    assert description.task_queue == settings.task_queue
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payload = temporal_env.client.data_converter.payload_converter.from_payloads(
        started.input.payloads, [TrainingInput]
    )[0]
    assert payload == TrainingInput(
        job_id=job["id"],
        framework="ultralytics",
        model="yolo11n.yaml",
        dataset_uri=job_body["dataset"],
        task="detect",
        epochs=3,
        imgsz=64,
        batch=4,
        gpus=0,
        hyperparameters={"workers": 0, "lr0": 0.01},
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
    )


async def test_a_registered_dataset_name_resolves_to_its_uri(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    registered = await api.post("/v1/datasets", json={"name": "shapes", "uri": job_body["dataset"]})
    assert registered.status_code == 201, registered.text

    job = await submit(api, {**job_body, "dataset": "shapes"})

    assert job["dataset"] == "shapes"
    assert job["dataset_uri"] == job_body["dataset"]


async def test_omitted_fields_take_their_defaults(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, {"model": "yolov8s.pt", "dataset": job_body["dataset"]})

    assert (job["framework"], job["task"], job["imgsz"], job["batch"], job["gpus"]) == (
        "ultralytics",
        "detect",
        640,
        16,
        0,
    )
    assert job["hyperparameters"] == {}


async def test_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/jobs/job_0000")

    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


async def test_the_list_pages_through_every_job_newest_first(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    created = [(await submit(api, job_body))["id"] for _ in range(5)]

    pages = []
    for offset in (0, 2, 4):
        response = await api.get("/v1/jobs", params={"limit": 2, "offset": offset})
        assert response.status_code == 200
        page = response.json()
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        pages.append([job["id"] for job in page["items"]])

    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [job_id for page in pages for job_id in page]
    assert sorted(listed) == sorted(created)
    everything = (await api.get("/v1/jobs")).json()["items"]
    stamps = [job["created_at"] for job in everything]
    assert stamps == sorted(stamps, reverse=True)


async def test_the_list_filters_by_state(api: httpx.AsyncClient, job_body: dict[str, Any]) -> None:
    kept = await submit(api, job_body)
    cancelled = await submit(api, job_body)
    assert (await api.post(f"/v1/jobs/{cancelled['id']}/cancel")).status_code == 202

    pending = (await api.get("/v1/jobs", params={"state": "PENDING"})).json()
    gone = (await api.get("/v1/jobs", params={"state": "CANCELLED"})).json()

    assert [j["id"] for j in pending["items"]] == [kept["id"]]
    assert [j["id"] for j in gone["items"]] == [cancelled["id"]]
    assert (pending["total"], gone["total"]) == (1, 1)


async def test_the_same_idempotency_key_returns_the_first_job_and_starts_nothing_new(
    api: httpx.AsyncClient, job_body: dict[str, Any], temporal_env: WorkflowEnvironment
) -> None:
    first = await api.post("/v1/jobs", json=job_body, headers={"Idempotency-Key": "abc"})
    again = await api.post("/v1/jobs", json=job_body, headers={"Idempotency-Key": "abc"})
    other = await api.post("/v1/jobs", json=job_body, headers={"Idempotency-Key": "xyz"})

    assert first.status_code == again.status_code == other.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert other.json()["id"] != first.json()["id"]
    assert (await api.get("/v1/jobs")).json()["total"] == 2
    workflows = [
        w.id
        async for w in temporal_env.client.list_workflows(
            f"WorkflowId = '{workflow_id_for(first.json()['id'])}'"
        )
    ]
    assert len(workflows) <= 1  # visibility may lag; the point is never two


async def test_the_timeline_of_a_new_job_starts_with_its_submission(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)

    page = (await api.get(f"/v1/jobs/{job['id']}/events")).json()

    assert page["last_seq"] == 1
    [event] = page["items"]
    assert event["seq"] == 1
    assert event["job_id"] == job["id"]
    assert event["type"] == "submitted"
    assert event["source"] == "api"
    assert event["data"] == {
        "state": "PENDING",
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": job_body["dataset"],
        "dataset_uri": job_body["dataset"],
        "epochs": 3,
    }


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi.json"])
async def test_operational_pages_answer(api: httpx.AsyncClient, path: str) -> None:
    assert (await api.get(path)).status_code == 200


async def test_the_internal_api_is_not_in_the_public_openapi_document(
    api: httpx.AsyncClient,
) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]

    assert not [p for p in paths if p.startswith("/internal")]
    assert "/v1/jobs" in paths
