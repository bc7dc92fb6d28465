"""POST /v1/chat/stream over a real HTTP connection: the language model's draft reaches the
client while the model is still writing it, and a model that breaks off mid-answer hands the
turn to the grammar parser, which says so."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainyard.main import create_app

from ..conftest import LiveServer, make_settings, run_server
from .openai_stub import OpenAIStub, held, plan

ASK = "yolo11n for 7 epochs"


@pytest.fixture
def stub() -> Iterator[tuple[OpenAIStub, LiveServer]]:
    scripted = OpenAIStub()
    with run_server(scripted.app()) as server:
        yield scripted, server


@pytest.fixture
def api_url(
    stub: tuple[OpenAIStub, LiveServer], tmp_path: Path, temporal_address: str
) -> Iterator[str]:
    """The API, planning with the stub model (served by uvicorn: ASGITransport buffers)."""
    settings = make_settings(
        tmp_path / "data",
        temporal_address,
        llm_base_url=f"{stub[1].http_url}/v1",
        llm_model="stub-model",
    )
    with run_server(create_app(settings)) as server:
        yield server.http_url


async def lines_of(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line:
            yield json.loads(line)


async def test_the_models_draft_reaches_the_client_before_its_last_token(
    stub: tuple[OpenAIStub, LiveServer], api_url: str
) -> None:
    scripted, _ = stub
    release = threading.Event()
    step, hold = held(plan(model="yolo11n", epochs=7), release)
    scripted.steps = [step]

    async with (
        httpx.AsyncClient(base_url=api_url, timeout=30) as client,
        client.stream("POST", "/v1/chat/stream", json={"message": ASK}) as response,
    ):
        assert response.status_code == 200
        lines = lines_of(response)
        # The stub holds its last token until this line is here: a reply built whole and
        # then sent never gets one.
        async with asyncio.timeout(5):
            first = await anext(lines)
        assert first["type"] == "draft"
        assert not hold.finished.is_set()
        release.set()
        rest = [line async for line in lines]

    [*drafts, reply] = [first, *rest]
    assert {line["type"] for line in drafts} == {"draft"}
    assert drafts[0]["request"]["model"] == "yolo11n"
    assert drafts[-1]["request"] | {"hyperparameters": {}} == {
        "framework": None,
        "model": "yolo11n",
        "dataset": None,
        "task": None,
        "epochs": 7,
        "imgsz": None,
        "batch": None,
        "gpus": None,
        "priority": None,
        "hyperparameters": {},
    }
    assert (reply["type"], reply["planner"], reply["notice"]) == ("reply", "llm", None)
    assert reply["plan"]["request"]["epochs"] == 7
    assert [request["stream"] for request in scripted.requests] == [True]


async def test_a_model_that_breaks_off_mid_answer_hands_over_to_the_parser(
    stub: tuple[OpenAIStub, LiveServer], api_url: str
) -> None:
    scripted, _ = stub
    step, _hold = held(plan(model="yolo11n", epochs=7), threading.Event(), patience_s=0.5)
    scripted.steps = [step]

    async with (
        httpx.AsyncClient(base_url=api_url, timeout=30) as client,
        client.stream("POST", "/v1/chat/stream", json={"message": ASK}) as response,
    ):
        lines = [line async for line in lines_of(response)]

    *drafts, reply = lines
    assert {line["type"] for line in drafts} == {"draft"}  # what it wrote before it broke off
    assert (reply["type"], reply["planner"]) == ("reply", "grammar")
    assert "language model is unavailable" in reply["notice"]
    assert reply["plan"]["request"]["epochs"] == 7
    # The turn is stored as the parser answered it.
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        stored = (await client.get(f"/v1/chat/{reply['conversation_id']}")).json()
    assert [m["planner"] for m in stored["messages"]] == [None, "grammar"]


async def test_no_transaction_is_open_while_the_model_answers_a_follow_up(
    stub: tuple[OpenAIStub, LiveServer], api_url: str
) -> None:
    scripted, _ = stub
    release = threading.Event()
    step, hold = held(plan(model="yolo11n", epochs=9), release)
    scripted.steps = [plan(model="yolo11n", epochs=7), step]

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        first = await client.post("/v1/chat", json={"message": ASK})
        assert first.status_code == 200, first.text
        conversation_id = first.json()["conversation_id"]
        follow_up = {"message": "make it 9 epochs", "conversation_id": conversation_id}
        async with client.stream("POST", "/v1/chat/stream", json=follow_up) as response:
            lines = lines_of(response)
            async with asyncio.timeout(5):
                assert (await anext(lines))["type"] == "draft"
            # The model is still writing: SQLite's one connection must be free for others
            # (the turn read its conversation in a unit of work that has ended).
            async with asyncio.timeout(5):
                others = await client.get("/v1/jobs")
            assert others.status_code == 200
            assert not hold.finished.is_set()
            release.set()
            reply = [line async for line in lines][-1]

        assert (reply["type"], reply["plan"]["request"]["epochs"]) == ("reply", 9)
        stored = (await client.get(f"/v1/chat/{conversation_id}")).json()
    assert [m["seq"] for m in stored["messages"]] == [1, 2, 3, 4]
