"""POST /v1/chat and friends on both tiers: words in, a plan card out, a job only on Start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from trainyard.auth.roles import Role
from trainyard.core.settings import BackendSettings
from trainyard.datasets.synthetic_classes import ClassesSpec, make_classes
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard.datasets.synthetic_text import TextSpec, make_text
from trainyard_workflows.contracts import workflow_id_for

from ..support import callback, start_attempt, user_with_key

ASK = "train yolo11n on my shapes dataset for 5 epochs at 64 with batch 4"


@pytest.fixture
async def shapes(api: httpx.AsyncClient, tmp_path: Path) -> dict[str, Any]:
    """A valid registered dataset `shapes` (validated at registration)."""
    generated = make_shapes(tmp_path / "shapes", ShapesSpec(train_images=6, val_images=2))
    created = await api.post("/v1/datasets", json={"name": "shapes", "uri": generated.uri})
    assert created.status_code == 201, created.text
    dataset: dict[str, Any] = created.json()
    return dataset


async def say(api: httpx.AsyncClient, message: str, conversation: str | None = None) -> Any:
    body: dict[str, Any] = {"message": message}
    if conversation is not None:
        body["conversation_id"] = conversation
    response = await api.post("/v1/chat", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def job_count(api: httpx.AsyncClient) -> int:
    total: int = (await api.get("/v1/jobs")).json()["total"]
    return total


async def test_a_request_in_words_becomes_a_ready_plan_card_and_no_job(
    api: httpx.AsyncClient, shapes: dict[str, Any]
) -> None:
    reply = await say(api, ASK)

    plan = reply["plan"]
    assert reply["planner"] == "grammar"
    assert plan["ready"] is True
    assert plan["request"] | {"hyperparameters": {}} == {
        "framework": "ultralytics",
        "model": "yolo11n.yaml",
        "dataset": "shapes",
        "task": "detect",
        "epochs": 5,
        "imgsz": 64,
        "batch": 4,
        "gpus": 0,
        "priority": None,  # none asked: the job's default (normal)
        "hyperparameters": {},
    }
    assert plan["dataset"]["status"] == "valid"
    assert plan["dataset"]["classes"] == len(shapes["report"]["class_histogram"])
    assert plan["dataset"]["images"] == 8
    assumed = {a["field"]: a["value"] for a in plan["assumed"]}
    assert assumed == {"model": "yolo11n.yaml", "gpus": 0}
    assert "rough guess" in plan["estimate"]["basis"]
    assert "Here is the plan: train yolo11n.yaml" in reply["text"]
    assert await job_count(api) == 0


async def test_a_follow_up_refines_the_plan_in_the_same_conversation(
    api: httpx.AsyncClient, shapes: dict[str, Any]
) -> None:
    first = await say(api, ASK)

    second = await say(api, "make it 20 epochs", first["conversation_id"])

    assert second["conversation_id"] == first["conversation_id"]
    assert second["plan"]["request"]["epochs"] == 20
    assert second["plan"]["request"]["imgsz"] == 64
    stored = (await api.get(f"/v1/chat/{first['conversation_id']}")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 2
    assert stored["messages"][3]["plan"]["request"]["epochs"] == 20
    assert stored["title"] == ASK


@pytest.mark.parametrize(
    ("message", "field", "words"),
    [
        ("train yolo11n on shapes on 10,000 GPUs", "gpus", "at most 8 GPUs"),
        ("train resnet9000 on shapes", "model", "resnet9000"),
        ("train yolo11n on nosuchset for 3 epochs", "dataset", "no dataset named 'nosuchset'"),
        ("train yolo11n on shapes at 500", "imgsz", "multiple of 32: 480 or 512"),
        ("hello there", "model", "Which model"),
    ],
)
async def test_what_trainyard_cannot_do_is_a_clear_answer_and_no_job(
    api: httpx.AsyncClient, shapes: dict[str, Any], message: str, field: str, words: str
) -> None:
    reply = await say(api, message)

    plan = reply["plan"]
    assert plan["ready"] is False
    asked = [q for q in plan["questions"] if q["field"] == field]
    assert asked, plan["questions"]
    assert words in asked[0]["question"]
    assert words in reply["text"]
    started = await api.post(
        f"/v1/chat/{reply['conversation_id']}/start", json={"request": plan["request"]}
    )
    assert started.status_code == 422
    assert started.json()["code"] == "plan_not_ready"
    assert await job_count(api) == 0


async def test_another_projects_dataset_is_as_unknown_as_a_missing_one(
    api: httpx.AsyncClient, app: FastAPI, shapes: dict[str, Any]
) -> None:
    outsider = await user_with_key(app, "outsider", {"elsewhere": Role.ADMIN})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test", headers=outsider
    ) as client:
        reply = await say(client, ASK)

    [question] = [q for q in reply["plan"]["questions"] if q["field"] == "dataset"]
    assert "no dataset named 'shapes'" in question["question"]
    assert reply["plan"]["dataset"] is None


async def test_start_submits_the_confirmed_card_and_records_the_job_on_the_conversation(
    api: httpx.AsyncClient,
    shapes: dict[str, Any],
    temporal_env: WorkflowEnvironment,
    settings: BackendSettings,
) -> None:
    reply = await say(api, ASK)
    edited = reply["plan"]["request"] | {"epochs": 2}

    started = await api.post(
        f"/v1/chat/{reply['conversation_id']}/start",
        json={"request": edited, "message_id": reply["message_id"]},
    )

    assert started.status_code == 201, started.text
    job = started.json()
    assert (job["model"], job["dataset"], job["epochs"], job["state"]) == (
        "yolo11n.yaml",
        "shapes",
        2,
        "PENDING",
    )
    stored = (await api.get(f"/v1/chat/{reply['conversation_id']}")).json()
    assert stored["messages"][1]["job_id"] == job["id"]
    assert stored["messages"][1]["plan"]["request"]["epochs"] == 2
    listed = (await api.get("/v1/chat")).json()["items"]
    assert listed[0]["job_ids"] == [job["id"]]
    workflow = temporal_env.client.get_workflow_handle(workflow_id_for(job["id"]))
    description = await workflow.describe()
    assert (description.workflow_type, description.task_queue) == (
        "TrainingWorkflow",
        settings.task_queue,
    )


async def test_starting_again_with_the_same_idempotency_key_replays_the_first_job(
    api: httpx.AsyncClient, shapes: dict[str, Any]
) -> None:
    reply = await say(api, ASK)
    url = f"/v1/chat/{reply['conversation_id']}/start"
    body = {"request": reply["plan"]["request"]}

    first = await api.post(url, json=body, headers={"Idempotency-Key": "k1"})
    again = await api.post(url, json=body, headers={"Idempotency-Key": "k1"})

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await job_count(api) == 1


async def test_an_edited_card_is_checked_again(
    api: httpx.AsyncClient, shapes: dict[str, Any]
) -> None:
    reply = await say(api, ASK)

    too_many = await api.post(
        "/v1/chat/plan", json={"request": reply["plan"]["request"] | {"gpus": 64}}
    )
    fine = await api.post(
        "/v1/chat/plan", json={"request": reply["plan"]["request"] | {"epochs": 50}}
    )

    assert too_many.json()["ready"] is False
    assert too_many.json()["questions"][0]["field"] == "gpus"
    assert fine.json()["ready"] is True
    assert fine.json()["estimate"]["seconds"] > reply["plan"]["estimate"]["seconds"]


async def test_the_estimate_learns_from_a_finished_run_of_the_same_model(
    api: httpx.AsyncClient, shapes: dict[str, Any]
) -> None:
    reply = await say(api, ASK)
    started = await api.post(
        f"/v1/chat/{reply['conversation_id']}/start", json={"request": reply["plan"]["request"]}
    )
    job_id = started.json()["id"]
    token = await start_attempt(api, job_id)
    beat = {"epoch": 5, "epochs": 5, "metrics": {}, "elapsed_s": 95.0}
    assert (await callback(api, job_id, "heartbeat", token, beat)).status_code == 202
    done = {"status": "succeeded", "metrics": {}, "artifacts": {}}
    assert (await callback(api, job_id, "done", token, done)).status_code == 202

    again = await say(api, ASK)

    estimate = again["plan"]["estimate"]
    assert estimate["basis"] == "from 1 finished run of yolo11n.yaml"
    # 95 s, 15 s of it start-up, for 5 epochs of 8 images: the same run again takes as long.
    assert estimate["seconds"] == pytest.approx(95.0, rel=0.01)


async def test_the_stream_from_the_grammar_parser_is_the_reply_at_once(
    api: httpx.AsyncClient, shapes: dict[str, Any]
) -> None:
    async with api.stream("POST", "/v1/chat/stream", json={"message": ASK}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in response.aiter_lines() if line]

    # No model writing: nothing to stream before the reply (test_chat_stream.py: the LLM's).
    [reply] = lines
    assert (reply["type"], reply["planner"]) == ("reply", "grammar")
    assert reply["text"].startswith("Here is the plan")
    assert reply["plan"]["ready"] is True
    stored = (await api.get(f"/v1/chat/{reply['conversation_id']}")).json()
    assert [m["content"] for m in stored["messages"]] == [ASK, reply["text"]]


async def test_an_unknown_conversation_is_404_for_every_route(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    body = {"message": ASK, "conversation_id": "conv_nope"}

    assert (await api.post("/v1/chat", json=body)).status_code == 404
    assert (await api.post("/v1/chat/stream", json=body)).status_code == 404
    assert (await api.get("/v1/chat/conv_nope")).status_code == 404
    started = await api.post("/v1/chat/conv_nope/start", json={"request": {}})
    assert started.status_code == 404


@pytest.mark.parametrize("body", [{"message": ""}, {"message": "x" * 4001}, {"text": "hi"}])
async def test_a_malformed_message_is_422(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert (await api.post("/v1/chat", json=body)).status_code == 422


async def test_a_timm_model_plans_a_classification_job_with_timm_defaults(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    classes = make_classes(tmp_path / "classes", ClassesSpec(train_per_class=2, val_per_class=1))
    body = {"name": "classes", "uri": classes.uri, "format": "imagefolder"}
    assert (await api.post("/v1/datasets", json=body)).status_code == 201

    reply = await say(api, "train resnet18 on my classes dataset for 3 epochs")

    plan = reply["plan"]
    assert plan["ready"], plan["questions"]
    request = plan["request"]
    assert (request["framework"], request["model"], request["task"]) == (
        "timm",
        "resnet18",
        "classify",
    )
    assert (request["imgsz"], request["batch"], request["epochs"]) == (224, 32, 3)


async def test_a_text_model_on_a_text_dataset_plans_text_classification(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    topics = make_text(tmp_path / "topics", TextSpec(train_per_label=3, val_per_label=1))
    body = {"name": "topics", "uri": topics.uri, "format": "text"}
    assert (await api.post("/v1/datasets", json=body)).status_code == 201

    reply = await say(api, "train bert on topics for 2 epochs")

    plan = reply["plan"]
    assert plan["ready"], plan["questions"]
    assert (plan["request"]["framework"], plan["request"]["task"]) == (
        "huggingface",
        "text-classification",
    )
    assert plan["dataset"]["format"] == "text"
