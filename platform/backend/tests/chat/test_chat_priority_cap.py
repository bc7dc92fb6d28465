"""A priority above what the caller may use is a question on the plan card, before Start, with
the very reason `POST /v1/jobs` would refuse it with (one rule: admission.submit_rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from trainyard.auth.models import Project
from trainyard.auth.roles import Role
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.runtime import Runtime

from ..support import user_with_key

ASK = "train yolo11n on my shapes dataset for 5 epochs at 64 with batch 4"


@pytest.fixture
async def shapes(api: httpx.AsyncClient, tmp_path: Path) -> None:
    """A valid registered dataset `shapes`, so the plan's only question can be the priority."""
    generated = make_shapes(tmp_path / "registered", ShapesSpec(train_images=6, val_images=2))
    created = await api.post("/v1/datasets", json={"name": "shapes", "uri": generated.uri})
    assert created.status_code == 201, created.text


def client_of(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test", headers=headers
    )


async def say(client: httpx.AsyncClient, message: str) -> Any:
    response = await client.post("/v1/chat", json={"message": message})
    assert response.status_code == 200, response.text
    return response.json()


async def cap_members_at(app: FastAPI, level: str) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        await session.execute(update(Project).values(max_priority=level))


def priority_questions(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [question for question in plan["questions"] if question["field"] == "priority"]


async def test_a_member_asking_above_their_cap_is_asked_before_start_and_no_job_starts(
    app: FastAPI, api: httpx.AsyncClient, shapes: None, job_body: dict[str, Any]
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})

    async with client_of(app, member) as client:
        reply = await say(client, f"urgent: {ASK}")
        started = await client.post(
            f"/v1/chat/{reply['conversation_id']}/start",
            json={"request": reply["plan"]["request"]},
        )
        submitted = await client.post("/v1/jobs", json={**job_body, "priority": "urgent"})
        jobs = (await client.get("/v1/jobs")).json()["total"]

    plan = reply["plan"]
    assert plan["ready"] is False
    [question] = priority_questions(plan)
    [refused] = submitted.json()["errors"]
    # The card says what submit would answer, word for word.
    assert submitted.status_code == 422
    assert refused["field"] == "priority"
    assert refused["message"] in question["question"]
    assert question["question"].startswith("You may not ask for urgent priority: at most high")
    assert question["choices"] == ["low", "normal", "high"]
    assert question["question"] in reply["text"]
    assert started.status_code == 422
    assert started.json()["code"] == "plan_not_ready"
    assert jobs == 0


async def test_a_level_within_the_cap_and_an_admins_urgent_are_ready(
    app: FastAPI, api: httpx.AsyncClient, shapes: None
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    admin = await user_with_key(app, "admin", {"default": Role.ADMIN})

    async with client_of(app, member) as client:
        high = await say(client, f"{ASK} with high priority")
    async with client_of(app, admin) as client:
        urgent = await say(client, f"urgent: {ASK}")

    assert (high["plan"]["request"]["priority"], high["plan"]["ready"]) == ("high", True)
    assert (urgent["plan"]["request"]["priority"], urgent["plan"]["ready"]) == ("urgent", True)


async def test_an_edited_card_is_checked_against_the_projects_cap_for_members(
    app: FastAPI, api: httpx.AsyncClient, shapes: None
) -> None:
    member = await user_with_key(app, "member", {"default": Role.MEMBER})
    admin = await user_with_key(app, "admin", {"default": Role.ADMIN})
    await cap_members_at(app, "normal")

    async with client_of(app, member) as client:
        reply = await say(client, ASK)
        request = reply["plan"]["request"]
        high = await client.post("/v1/chat/plan", json={"request": request | {"priority": "high"}})
        low = await client.post("/v1/chat/plan", json={"request": request | {"priority": "low"}})
    async with client_of(app, admin) as client:
        by_admin = await client.post(
            "/v1/chat/plan", json={"request": request | {"priority": "urgent"}}
        )

    assert reply["plan"]["ready"] is True  # no priority asked: the job's default, normal
    [question] = priority_questions(high.json())
    assert "at most normal for you in 'default'" in question["question"]
    assert question["choices"] == ["low", "normal"]
    assert (high.json()["ready"], low.json()["ready"]) == (False, True)
    assert by_admin.json()["ready"] is True
