"""A project's quota: members read it with its usage, only platform admins set it (audited),
and a project over its monthly GPU-hours waits (hold) or is refused at submit (refuse)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from trainyard.auth.roles import Role
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app

from ..support import INTERNAL_HEADERS, move, serving, submit, user_with_key
from .test_priorities import client_of

TWO_GPUS = {"gpus": 2, "largest_node_gpus": 2, "cpu_slots": 2, "source": "configured"}
LIMITS = {"gpus": 1, "runs": 3, "gpu_hours_per_month": 10.0, "max_priority": "normal"}


async def test_members_read_the_quota_and_its_usage_but_may_not_set_it(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    project_admin = await user_with_key(app, "padmin", {"default": Role.ADMIN})
    held = (await submit(api, job_body))["id"]
    for state in ("VALIDATING", "STARTING"):
        assert (await move(api, held, state)).status_code == 200

    async with client_of(app, member) as client:
        before = await client.get("/v1/projects/default/quota")
        refused = await client.put("/v1/projects/default/quota", json=LIMITS)
    async with client_of(app, project_admin) as client:
        refused_too = await client.put("/v1/projects/default/quota", json=LIMITS)

    assert before.status_code == 200, before.text
    assert before.json() == {
        "project": "default",
        "quota": {"gpus": None, "runs": None, "gpu_hours_per_month": None, "max_priority": "high"},
        "usage": {"gpus": 0, "runs": 1, "gpu_hours_this_month": 0.0},
        "remaining": {"gpus": None, "runs": None, "gpu_hours_this_month": None},
        "budget_exhausted": False,
    }
    assert refused.status_code == 403
    assert (refused_too.status_code, refused_too.json()["code"]) == (403, "platform_admin_only")


async def test_a_platform_admin_sets_the_quota_and_the_change_is_audited(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    answer = await api.put("/v1/projects/default/quota", json=LIMITS)
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    async with client_of(app, member) as client:
        read = await client.get("/v1/projects/default/quota")
    trail = await api.get("/v1/projects/default/audit")
    bad = await api.put("/v1/projects/default/quota", json={**LIMITS, "gpus": -1})
    unknown = await api.put("/v1/projects/nowhere/quota", json=LIMITS)

    assert answer.status_code == 200, answer.text
    assert read.json()["quota"] == LIMITS
    assert read.json()["remaining"] == {"gpus": 1, "runs": 3, "gpu_hours_this_month": 10.0}
    quota_events = [e for e in trail.json()["items"] if e["action"] == "project.quota"]
    assert [e["detail"] for e in quota_events] == [LIMITS]
    assert bad.status_code == 422
    assert unknown.status_code == 404


async def _validated_gpu_job(api: httpx.AsyncClient, job_body: dict[str, Any]) -> str:
    job_id: str = (await submit(api, {**job_body, "gpus": 1}))["id"]
    assert (await move(api, job_id, "VALIDATING")).status_code == 200
    return job_id


async def test_over_its_budget_a_projects_gpu_jobs_wait_and_its_cpu_jobs_run(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    await api.put("/internal/v1/capacity", json=TWO_GPUS, headers=INTERNAL_HEADERS)
    # No GPU-hours at all: GPU jobs are held from the start.
    assert (
        await api.put("/v1/projects/default/quota", json={"gpu_hours_per_month": 0.0})
    ).status_code == 200
    gpu_job = await _validated_gpu_job(api, job_body)
    cpu_job = (await submit(api, job_body))["id"]
    assert (await move(api, cpu_job, "VALIDATING")).status_code == 200

    gpu = await api.post(f"/internal/v1/jobs/{gpu_job}/admission", headers=INTERNAL_HEADERS)
    cpu = await api.post(f"/internal/v1/jobs/{cpu_job}/admission", headers=INTERNAL_HEADERS)
    quota = await api.get("/v1/projects/default/quota")

    assert gpu.json()["admitted"] is False
    assert gpu.json()["state"] == "QUEUED"
    assert "GPU-hours" in gpu.json()["reason"]
    assert cpu.json()["admitted"] is True
    assert quota.json()["budget_exhausted"] is True
    assert quota.json()["remaining"]["gpu_hours_this_month"] == 0.0


async def test_with_refuse_a_gpu_job_over_budget_is_refused_at_submit(
    settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    refusing = create_app(settings.model_copy(update={"budget_exceeded": "refuse"}))
    async with serving(refusing) as api:
        await api.put("/internal/v1/capacity", json=TWO_GPUS, headers=INTERNAL_HEADERS)
        await api.put("/v1/projects/default/quota", json={"gpu_hours_per_month": 0.0})

        gpu = await api.post("/v1/jobs", json={**job_body, "gpus": 1})
        cpu = await api.post("/v1/jobs", json=job_body)

    assert gpu.status_code == 422
    assert gpu.json()["errors"] == [
        {
            "field": "gpus",
            "message": "'default' has used its 0 GPU-hours this month: ask for 0 GPUs, or ask "
            "a platform admin to raise the budget",
        }
    ]
    assert cpu.status_code == 201


async def test_another_projects_member_finds_no_quota_here(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    outsider = await user_with_key(app, "outsider", {"elsewhere": Role.ADMIN})

    async with client_of(app, outsider) as client:
        read = await client.get("/v1/projects/default/quota")
        written = await client.put("/v1/projects/default/quota", json=LIMITS)

    assert read.status_code == 404
    assert written.status_code in (403, 404)  # not a platform admin: never written
    assert (await api.get("/v1/projects/default/quota")).json()["quota"] != LIMITS
