"""Capacity on both tiers: the worker's report (through its own backend client) is stored,
a job that could never fit is refused at submit with a 422 that says what exists, and the
plan card asks about GPUs with the same sentence before Start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from trainyard.admission.capacity_store import current_capacity
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.runtime import Runtime
from trainyard_workflows.backend_client import BackendAuthError, BackendClient
from trainyard_workflows.capacity import Capacity
from trainyard_workflows.capacity.reporter import CapacityReporter

from ..support import INTERNAL_HEADERS, INTERNAL_TOKEN, submit

CPU_ONLY = Capacity(gpus=0, largest_node_gpus=0, cpu_slots=2, source="none")
NO_GPU = "this platform has no GPU (it trains on the CPU, 2 runs at a time): ask for 0 GPUs"
ON_THE_CARD = "This platform has no GPU (it trains on the CPU, 2 runs at a time): ask for 0 GPUs."
CLUSTER = Capacity(gpus=8, largest_node_gpus=2, cpu_slots=4, source="kubernetes")


@pytest.fixture
async def worker_client(app: FastAPI) -> AsyncIterator[BackendClient]:
    """The worker's own client of the internal API, talking to this app."""
    transport = httpx.ASGITransport(app=app)
    async with BackendClient(
        "http://trainyard.test", INTERNAL_TOKEN, transport=transport, retry_for_s=0.1
    ) as client:
        yield client


async def reported(worker_client: BackendClient, capacity: Capacity) -> None:
    async def discover() -> Capacity:
        return capacity

    assert await CapacityReporter(worker_client, discover, every_s=60).report_once()


async def stored(app: FastAPI) -> Capacity | None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        return await current_capacity(session)


async def test_the_workers_report_is_stored_and_the_next_one_replaces_it(
    app: FastAPI, worker_client: BackendClient
) -> None:
    assert await stored(app) is None

    await reported(worker_client, CPU_ONLY)
    assert await stored(app) == CPU_ONLY

    await reported(worker_client, CLUSTER)
    assert await stored(app) == CLUSTER


async def test_the_capacity_route_needs_the_internal_token(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    body = CPU_ONLY.model_dump()

    anonymous = await api.put("/internal/v1/capacity", json=body)
    wrong = await api.put(
        "/internal/v1/capacity", json=body, headers={"Authorization": "Bearer not-the-token"}
    )

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert await stored(app) is None
    transport = httpx.ASGITransport(app=app)
    async with BackendClient("http://trainyard.test", "wrong", transport=transport) as client:
        with pytest.raises(BackendAuthError):
            await client.report_capacity(CPU_ONLY)


async def test_an_impossible_capacity_is_a_422(app: FastAPI, api: httpx.AsyncClient) -> None:
    body = CLUSTER.model_dump() | {"largest_node_gpus": 9}

    response = await api.put("/internal/v1/capacity", json=body, headers=INTERNAL_HEADERS)

    assert response.status_code == 422, response.text
    assert await stored(app) is None


async def test_gpus_on_a_cpu_only_platform_are_refused_at_submit_saying_what_exists(
    api: httpx.AsyncClient, worker_client: BackendClient, job_body: dict[str, Any]
) -> None:
    await reported(worker_client, CPU_ONLY)

    response = await api.post("/v1/jobs", json=job_body | {"gpus": 2})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert response.json()["errors"] == [{"field": "gpus", "message": NO_GPU}]
    assert (await api.get("/v1/jobs")).json()["total"] == 0


async def test_more_gpus_than_the_largest_node_are_refused_and_a_fitting_job_is_accepted(
    api: httpx.AsyncClient, worker_client: BackendClient, job_body: dict[str, Any]
) -> None:
    await reported(worker_client, CLUSTER)

    refused = await api.post("/v1/jobs", json=job_body | {"gpus": 4})
    accepted = await submit(api, job_body | {"gpus": 2})

    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["message"] == (
        "this job asks for 4 GPUs, but the largest node has 2 (8 in all): ask for at most 2"
    )
    assert accepted["gpus"] == 2


async def test_a_cpu_job_is_accepted_on_a_cpu_only_platform(
    api: httpx.AsyncClient, worker_client: BackendClient, job_body: dict[str, Any]
) -> None:
    await reported(worker_client, CPU_ONLY)

    job = await submit(api, job_body | {"gpus": 0})

    assert job["state"] == "PENDING"


async def test_before_any_report_nothing_is_refused_on_a_guess(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body | {"gpus": 2})

    assert job["gpus"] == 2


# --- the plan card -------------------------------------------------------------------------


@pytest.fixture
async def shapes(api: httpx.AsyncClient, tmp_path: Path) -> None:
    """A valid registered dataset `shapes`."""
    generated = make_shapes(tmp_path / "shapes", ShapesSpec(train_images=6, val_images=2))
    created = await api.post("/v1/datasets", json={"name": "shapes", "uri": generated.uri})
    assert created.status_code == 201, created.text


ASK_2_GPUS = "train yolo11n on my shapes dataset for 5 epochs at 64 with batch 4 on 2 GPUs"


async def test_the_plan_for_gpus_on_a_cpu_only_platform_is_not_ready_and_says_why(
    api: httpx.AsyncClient, worker_client: BackendClient, shapes: None
) -> None:
    await reported(worker_client, CPU_ONLY)

    response = await api.post("/v1/chat", json={"message": ASK_2_GPUS})

    assert response.status_code == 200, response.text
    plan = response.json()["plan"]
    assert plan["request"]["gpus"] == 2
    assert plan["ready"] is False
    assert plan["questions"] == [{"field": "gpus", "question": ON_THE_CARD, "choices": ["0"]}]
    conversation = response.json()["conversation_id"]
    started = await api.post(f"/v1/chat/{conversation}/start", json={"request": plan["request"]})
    assert started.status_code == 422, started.text
    assert started.json()["errors"] == [{"field": "gpus", "message": ON_THE_CARD}]


async def test_an_edited_card_within_the_capacity_is_ready_again(
    api: httpx.AsyncClient, worker_client: BackendClient, shapes: None
) -> None:
    await reported(worker_client, CLUSTER)
    request = {"model": "yolo11n.pt", "dataset": "shapes", "epochs": 5, "imgsz": 64, "batch": 4}

    too_many = await api.post("/v1/chat/plan", json={"request": request | {"gpus": 4}})
    fine = await api.post("/v1/chat/plan", json={"request": request | {"gpus": 2}})

    assert too_many.status_code == fine.status_code == 200
    assert too_many.json()["ready"] is False
    assert too_many.json()["questions"][0]["question"].startswith("This job asks for 4 GPUs")
    assert too_many.json()["questions"][0]["choices"] == ["2"]
    assert fine.json()["ready"] is True


async def test_without_a_report_the_plan_for_gpus_is_ready(
    api: httpx.AsyncClient, shapes: None
) -> None:
    response = await api.post("/v1/chat", json={"message": ASK_2_GPUS})

    assert response.json()["plan"]["ready"] is True
