"""Priorities by name: the default, the caps by role, the stored number, and their effect on
the queue through the real API (a high job queued after a normal one is admitted first)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from trainyard.admission.priorities import PRIORITY_NAMES, priority_name, priority_value
from trainyard.auth.models import Project
from trainyard.auth.roles import Role
from trainyard.jobs.models import Job

from ..support import INTERNAL_HEADERS, get_job, move, submit, user_with_key
from .test_admission_queue import ONE_CPU_SLOT, runtime_of_app


def client_of(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test", headers=headers
    )


async def _stored(app: FastAPI, job_id: str) -> int:
    async with runtime_of_app(app).db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job.priority


async def _admitted(app: FastAPI, job_id: str) -> bool:
    async with runtime_of_app(app).db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job.admitted_at is not None


async def _ask(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    assert (await move(api, job_id, "VALIDATING")).status_code == 200
    response = await api.post(f"/internal/v1/jobs/{job_id}/admission", headers=INTERNAL_HEADERS)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_levels_are_ordered_and_every_stored_number_reads_as_a_level() -> None:
    values = [priority_value(name) for name in PRIORITY_NAMES]
    assert values == sorted(values)
    assert [priority_name(value) for value in values] == list(PRIORITY_NAMES)
    assert priority_name(0) == "normal"  # jobs stored before levels existed
    assert priority_name(150) == "high"
    assert priority_name(-1000) == "low"


async def test_a_job_is_normal_by_default_and_stores_its_level_as_a_number(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    plain = await submit(api, job_body)
    urgent = await submit(api, {**job_body, "priority": "urgent"})

    assert plain["priority"] == "normal"
    assert (await get_job(api, urgent["id"]))["priority"] == "urgent"
    assert await _stored(app, plain["id"]) == priority_value("normal")
    assert await _stored(app, urgent["id"]) == priority_value("urgent")
    bad = await api.post("/v1/jobs", json={**job_body, "priority": "asap"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "priority"


async def test_a_member_may_ask_up_to_the_projects_cap_and_its_admin_for_urgent(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    admin = await user_with_key(app, "admin", {"default": Role.ADMIN})

    async with client_of(app, member) as client:
        high = await client.post("/v1/jobs", json={**job_body, "priority": "high"})
        urgent = await client.post("/v1/jobs", json={**job_body, "priority": "urgent"})
        async with runtime_of_app(app).db.session() as session:
            await session.execute(update(Project).values(max_priority="normal"))
        high_after = await client.post("/v1/jobs", json={**job_body, "priority": "high"})
    async with client_of(app, admin) as client:
        by_admin = await client.post("/v1/jobs", json={**job_body, "priority": "urgent"})

    assert high.status_code == 201
    assert urgent.status_code == 422
    assert urgent.json()["errors"] == [
        {
            "field": "priority",
            "message": "at most high for you in 'default' (its admins may ask for urgent)",
        }
    ]
    assert high_after.status_code == 422
    assert "at most normal" in high_after.json()["errors"][0]["message"]
    assert by_admin.status_code == 201


async def test_a_high_job_queued_after_a_normal_one_is_admitted_first(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    response = await api.put("/internal/v1/capacity", json=ONE_CPU_SLOT, headers=INTERNAL_HEADERS)
    assert response.status_code == 204
    running = (await submit(api, job_body))["id"]
    assert (await _ask(api, running))["admitted"]
    normal = (await submit(api, job_body))["id"]
    assert (await _ask(api, normal))["position"] == 1
    high = (await submit(api, {**job_body, "priority": "high"}))["id"]

    assert (await _ask(api, high))["position"] == 1  # ahead of the normal one already

    assert (await move(api, running, "FAILED", "boom")).status_code == 200
    for _ in range(100):
        if await _admitted(app, high):
            break
        await asyncio.sleep(0.05)
    assert await _admitted(app, high)
    assert not await _admitted(app, normal)
