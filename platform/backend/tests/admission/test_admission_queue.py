"""Admission through the internal API, on both tiers: a validated job that fits is admitted at
once; one that does not waits QUEUED with its place and reason, and is admitted when a job
ends; one that can never fit is refused with a sentence saying what exists."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI

from trainyard.jobs.models import Job
from trainyard.runtime import Runtime

from ..support import (
    INTERNAL_HEADERS,
    callback,
    events,
    get_job,
    heartbeat,
    move,
    start_attempt,
    submit,
)

ONE_CPU_SLOT = {"gpus": 0, "largest_node_gpus": 0, "cpu_slots": 1, "source": "configured"}


def runtime_of_app(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def _report(api: httpx.AsyncClient, capacity: dict[str, Any]) -> None:
    response = await api.put("/internal/v1/capacity", json=capacity, headers=INTERNAL_HEADERS)
    assert response.status_code == 204, response.text


async def _validated(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    job = await submit(api, body)
    assert (await move(api, job["id"], "VALIDATING")).status_code == 200
    job_id: str = job["id"]
    return job_id


async def _ask(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await api.post(f"/internal/v1/jobs/{job_id}/admission", headers=INTERNAL_HEADERS)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _admitted_at(app: FastAPI, job_id: str) -> datetime | None:
    async with runtime_of_app(app).db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job.admitted_at


async def _until_admitted(app: FastAPI, job_id: str) -> None:
    """Without asking: the pass a job's end starts admits it by itself."""
    for _ in range(100):
        if await _admitted_at(app, job_id) is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} was never admitted")


async def test_a_job_that_fits_is_admitted_at_once_and_asking_again_says_so(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(api, ONE_CPU_SLOT)
    job_id = await _validated(api, job_body)

    first = await _ask(api, job_id)
    again = await _ask(api, job_id)

    assert first["admitted"] is True
    assert again["admitted"] is True
    assert (await get_job(api, job_id))["state"] == "VALIDATING"  # STARTING is the worker's


async def test_a_job_that_does_not_fit_waits_queued_and_is_admitted_when_the_running_one_ends(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(api, ONE_CPU_SLOT)
    running = await _validated(api, job_body)
    assert (await _ask(api, running))["admitted"]
    waiting = await _validated(api, job_body)

    answer = await _ask(api, waiting)

    assert answer["admitted"] is False
    assert answer["state"] == "QUEUED"
    assert answer["position"] == 1
    assert "CPU" in answer["reason"]
    job = await get_job(api, waiting)
    assert job["state"] == "QUEUED"
    queued = [e for e in await events(api, waiting) if e["type"] == "state"][-1]
    assert queued["data"]["to"] == "QUEUED"
    assert queued["data"]["reason"] == answer["reason"]

    await asyncio.sleep(0.2)
    assert await _admitted_at(app, waiting) is None

    # The running job ends: its slot goes to the queued one (the API's own pass, no recheck).
    assert (await move(api, running, "FAILED", "boom")).status_code == 200

    await _until_admitted(app, waiting)
    assert (await _ask(api, waiting)) == {**answer, "admitted": True, "position": 0, "reason": ""}


async def test_a_queued_job_cancelled_while_waiting_is_answered_with_its_end(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(api, ONE_CPU_SLOT)
    assert (await _ask(api, await _validated(api, job_body)))["admitted"]
    waiting = await _validated(api, job_body)
    assert (await _ask(api, waiting))["state"] == "QUEUED"

    assert (await move(api, waiting, "CANCELLED", "cancelled")).status_code == 200
    answer = await _ask(api, waiting)

    assert answer == {**answer, "admitted": False, "state": "CANCELLED"}


async def test_a_job_asking_for_gpus_on_a_gpu_less_platform_is_refused_saying_what_exists(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    # Submitted before the worker said what the platform has (nothing refused it then).
    job_id = await _validated(api, {**job_body, "gpus": 2})
    await _report(api, {**ONE_CPU_SLOT, "cpu_slots": 2})

    answer = await _ask(api, job_id)

    assert answer["admitted"] is False
    assert answer["refused"] == (
        "this platform has no GPU (it trains on the CPU, 2 runs at a time): ask for 0 GPUs"
    )
    assert (await get_job(api, job_id))["state"] == "VALIDATING"


async def test_without_a_capacity_report_nothing_is_held_by_hardware(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    jobs = [await _validated(api, job_body) for _ in range(3)]

    answers = [await _ask(api, job_id) for job_id in jobs]

    assert all(answer["admitted"] for answer in answers)


async def test_the_admission_route_needs_the_internal_token(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    job_id = await _validated(api, job_body)

    response = await api.post(f"/internal/v1/jobs/{job_id}/admission")

    assert response.status_code == 401


async def test_a_bigger_capacity_report_admits_what_waits(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await _report(api, ONE_CPU_SLOT)
    assert (await _ask(api, await _validated(api, job_body)))["admitted"]
    waiting = await _validated(api, job_body)
    assert (await _ask(api, waiting))["state"] == "QUEUED"

    await _report(api, {**ONE_CPU_SLOT, "cpu_slots": 2})

    await _until_admitted(app, waiting)


async def _preempted_by(app: FastAPI, job_id: str) -> str | None:
    async with runtime_of_app(app).db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job.preempted_by


async def _running_low_and_queued_high(
    api: httpx.AsyncClient, job_body: dict[str, Any], high: str = "high"
) -> tuple[str, str, str]:
    await _report(api, ONE_CPU_SLOT)
    low = await _validated(api, {**job_body, "priority": "low"})
    assert (await _ask(api, low))["admitted"]
    assert (await move(api, low, "STARTING")).status_code == 200
    token = await start_attempt(api, low, 1)
    urgent = await _validated(api, {**job_body, "priority": high})
    assert (await _ask(api, urgent))["state"] == "QUEUED"
    return low, urgent, token


async def test_a_higher_priority_job_makes_a_lower_one_give_way_and_takes_its_slot(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    low, urgent, token = await _running_low_and_queued_high(api, job_body)

    assert await _preempted_by(app, low) == urgent
    # Its trainer stopped: the worker sends it back to the queue.
    response = await api.post(
        f"/internal/v1/jobs/{low}/requeue",
        json={"attempt": 1, "by": urgent},
        headers=INTERNAL_HEADERS,
    )

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "QUEUED"
    await _until_admitted(app, urgent)
    assert await _admitted_at(app, low) is None
    assert await _preempted_by(app, low) is None
    timeline = await events(api, low)
    preempted = [e for e in timeline if e["type"] == "preempted"]
    assert [e["data"] for e in preempted] == [{"by": urgent, "attempt": 1}]
    assert timeline[-1]["type"] in {"preempted", "queue"}
    # The stopped trainer's late heartbeat cannot make the queued job RUNNING again.
    late = await callback(api, low, "heartbeat", token, heartbeat(1))
    assert late.status_code == 403
    assert "preempted" in late.json()["detail"]
    assert (await get_job(api, low))["state"] == "QUEUED"


async def test_an_equal_priority_waits_without_preempting(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    low, same, _ = await _running_low_and_queued_high(api, job_body, high="low")

    assert await _preempted_by(app, low) is None
    assert await _admitted_at(app, same) is None
