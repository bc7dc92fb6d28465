"""Cancelling a job: through its workflow, or directly when nothing runs for it."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from .support import DONE_SUCCEEDED, callback, events, get_job, move, start_attempt, submit


async def test_cancelling_a_pending_job_ends_it_cancelled_and_cancels_its_workflow(
    api: httpx.AsyncClient, job_body: dict[str, Any], temporal_env: WorkflowEnvironment
) -> None:
    job = await submit(api, job_body)

    response = await api.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    assert response.json()["state"] == "CANCELLED"
    after = await get_job(api, job["id"])
    assert (after["state"], after["cancel_requested"]) == ("CANCELLED", True)
    kinds = [(e["type"], e["data"].get("to")) for e in await events(api, job["id"])]
    assert kinds == [("submitted", None), ("cancel_requested", None), ("state", "CANCELLED")]
    handle = temporal_env.client.get_workflow_handle(f"training-{job['id']}")
    history = await handle.fetch_history()
    assert any(
        e.HasField("workflow_execution_cancel_requested_event_attributes") for e in history.events
    )


async def test_cancelling_a_running_job_asks_its_workflow_and_waits_for_the_trainer(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"])

    response = await api.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    assert (response.json()["state"], response.json()["cancel_requested"]) == ("STARTING", True)
    done = {"status": "cancelled", "reason": "stopped on request", "metrics": {}, "artifacts": {}}
    assert (await callback(api, job["id"], "done", token, done)).status_code == 202
    assert (await get_job(api, job["id"]))["state"] == "CANCELLED"


async def test_cancelling_twice_records_one_request(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    assert (await move(api, job["id"], "VALIDATING")).status_code == 200

    for _ in range(2):
        assert (await api.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 202

    requests = [e for e in await events(api, job["id"]) if e["type"] == "cancel_requested"]
    assert len(requests) == 1


async def test_a_job_whose_workflow_is_gone_is_cancelled_directly(
    api: httpx.AsyncClient, job_body: dict[str, Any], temporal_env: WorkflowEnvironment
) -> None:
    job = await submit(api, job_body)
    assert (await move(api, job["id"], "RUNNING")).status_code == 200
    handle = temporal_env.client.get_workflow_handle(f"training-{job['id']}")
    await handle.terminate("gone")
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED

    response = await api.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 202
    assert response.json()["state"] == "CANCELLED"


async def test_cancelling_a_finished_job_is_409(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"])
    assert (await callback(api, job["id"], "done", token, DONE_SUCCEEDED)).status_code == 202

    response = await api.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 409
    assert response.json()["code"] == "job_terminal"
    assert (await get_job(api, job["id"]))["state"] == "SUCCEEDED"


async def test_cancelling_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.post("/v1/jobs/job_missing/cancel")).status_code == 404
