"""Tracking never fails a job: an unreachable MLflow server only leaves `tracking_warning`s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import ActivityEnvironment

from trainyard.cli.embedded import free_local_port
from trainyard_workflows.activities.tracking_activities import TrackingActivities
from trainyard_workflows.activities.tracking_schemas import (
    FinishTrackingInput,
    StartTrackingInput,
)
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.tracking import build_tracker

from .support import INTERNAL_TOKEN, events, get_job, submit


@pytest.fixture
async def backend(app: FastAPI) -> AsyncIterator[BackendClient]:
    transport = httpx.ASGITransport(app=app)
    async with BackendClient(
        "http://trainyard.test", INTERNAL_TOKEN, transport=transport
    ) as client:
        yield client


def _activities(
    backend: BackendClient, tmp_path: Path, tracking_uri: str | None
) -> TrackingActivities:
    settings = WorkerSettings(data_dir=tmp_path, mlflow_tracking_uri=tracking_uri)
    return TrackingActivities(backend, build_tracker(settings), settings)


async def test_an_unreachable_mlflow_server_leaves_a_warning_and_an_untracked_job(
    api: httpx.AsyncClient, backend: BackendClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    job = await submit(api, job_body)
    nobody = f"http://127.0.0.1:{free_local_port()}"
    activities = _activities(backend, tmp_path, nobody)

    run = await ActivityEnvironment().run(
        activities.start_tracking, StartTrackingInput(job["id"], 1)
    )
    finished = await ActivityEnvironment().run(
        activities.finish_tracking, FinishTrackingInput(job["id"], "abc123", "SUCCEEDED")
    )

    assert run is None
    assert finished.status is None
    assert finished.model_version is None
    assert finished.warnings >= 1
    warnings = [e for e in await events(api, job["id"]) if e["type"] == "tracking_warning"]
    assert warnings
    assert "could not create the MLflow run" in warnings[0]["message"]
    assert (await get_job(api, job["id"]))["tracking"] is None


async def test_without_a_tracking_uri_the_activities_do_nothing(
    api: httpx.AsyncClient, backend: BackendClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    job = await submit(api, job_body)
    activities = _activities(backend, tmp_path, None)

    run = await ActivityEnvironment().run(
        activities.start_tracking, StartTrackingInput(job["id"], 1)
    )
    finished = await ActivityEnvironment().run(
        activities.finish_tracking, FinishTrackingInput(job["id"], "abc123", "FAILED")
    )

    assert run is None
    assert finished.status is None
    assert finished.warnings == 0
    assert not [e for e in await events(api, job["id"]) if e["type"] == "tracking_warning"]
