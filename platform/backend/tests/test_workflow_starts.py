"""A job's workflow starts after its row commits, never inside its transaction: a job stored
while Temporal is down, or by an API stopped between the commit and the start, is started by
the sweep; a cancel recorded while Temporal is down is delivered by it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from trainyard.cli.embedded import free_local_port
from trainyard_testing.temporal import start_dev_server

from .conftest import make_settings
from .support import events, get_job, submit
from .test_app_lifecycle import serve

# The sweep runs every few tenths of a second here and takes jobs of any age.
SWEEP = {"workflow_sweep_interval_s": 0.2, "workflow_start_grace_s": 0.0}


async def running(handle: WorkflowHandle[Any, Any], within_s: float = 30.0) -> bool:
    """Whether the workflow exists and runs, waiting up to `within_s` for it to appear."""
    for _ in range(int(within_s / 0.2)):
        try:
            return (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        except RPCError:
            await asyncio.sleep(0.2)
    return False


async def test_a_job_submitted_while_temporal_is_down_waits_and_starts_when_it_answers(
    tmp_path: Path, job_body: dict[str, Any], backend_tier: dict[str, object]
) -> None:
    port = free_local_port()
    settings = make_settings(tmp_path / "data", f"127.0.0.1:{port}", **SWEEP, **backend_tier)
    async for client in serve(settings):
        response = await client.post("/v1/jobs", json=job_body)
        assert response.status_code == 201, response.text
        job = response.json()
        assert job["state"] == "PENDING"
        waiting = [e for e in await events(client, job["id"]) if e["type"] != "submitted"]
        assert [e["type"] for e in waiting] == ["waiting_for_workflow"]
        assert "Temporal is unreachable" in waiting[0]["message"]

        late = await start_dev_server(port)
        try:
            handle = late.client.get_workflow_handle(f"training-{job['id']}")
            assert await running(handle)
            # Started once: the sweep does not start it again (no second start is attempted).
            await asyncio.sleep(1.0)
            history = await handle.fetch_history()
            assert (
                sum(
                    e.HasField("workflow_execution_started_event_attributes")
                    for e in history.events
                )
                == 1
            )
        finally:
            await late.shutdown()


async def test_a_job_committed_by_an_api_stopped_before_the_start_is_started_by_the_next(
    tmp_path: Path,
    job_body: dict[str, Any],
    backend_tier: dict[str, object],
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> None:
    data_dir = tmp_path / "data"
    # The first API's Temporal never answers: its job is committed and its start is lost,
    # which is the state an API stopped between the two leaves behind.
    unreachable = make_settings(data_dir, f"127.0.0.1:{free_local_port()}", **backend_tier)
    async for client in serve(unreachable):
        job = await submit(client, job_body)
    handle = temporal_env.client.get_workflow_handle(f"training-{job['id']}")
    assert not await running(handle, within_s=0.4)

    restarted = make_settings(
        data_dir,
        temporal_address,
        task_queue=unreachable.task_queue,
        **SWEEP,
        **backend_tier,
    )
    async for client in serve(restarted):
        assert await running(handle)
        assert (await get_job(client, job["id"]))["state"] == "PENDING"


# One tier: what is tested is Temporal's outage (the sweep's queries run on both tiers above).
@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
async def test_a_cancel_recorded_while_temporal_is_down_is_delivered_when_it_answers(
    tmp_path: Path, job_body: dict[str, Any], backend_tier: dict[str, object]
) -> None:
    port = free_local_port()
    settings = make_settings(tmp_path / "data", f"127.0.0.1:{port}", **SWEEP, **backend_tier)
    first = await start_dev_server(port, "--db-filename", str(tmp_path / "temporal.db"))
    async for client in serve(settings):
        try:
            job = await submit(client, job_body)
            move = await client.post(
                f"/internal/v1/jobs/{job['id']}/transition",
                json={"state": "RUNNING"},
                headers={"Authorization": f"Bearer {settings.internal_token.get_secret_value()}"},
            )
            assert move.status_code == 200, move.text
        finally:
            await first.shutdown()

        response = await client.post(f"/v1/jobs/{job['id']}/cancel")
        assert response.status_code == 202, response.text
        assert (response.json()["state"], response.json()["cancel_requested"]) == ("RUNNING", True)

        again = await start_dev_server(port, "--db-filename", str(tmp_path / "temporal.db"))
        try:
            handle = again.client.get_workflow_handle(f"training-{job['id']}")
            for _ in range(150):
                history = await handle.fetch_history()
                if any(
                    e.HasField("workflow_execution_cancel_requested_event_attributes")
                    for e in history.events
                ):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the recorded cancel never reached the workflow")
        finally:
            await again.shutdown()
