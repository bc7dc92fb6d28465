"""The LLM planner against a local OpenAI-compatible server (no network) and pydantic-ai's
test models: structured output, tools, corrections fed back, and every way a model fails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from trainyard.chat.llm_planner import LlmConfig, LlmUnavailable, draft_with_llm
from trainyard.chat.plan import ChatTurn, DatasetSummary, JobSummary, PlanDraft, PlanRequest
from trainyard.cli.embedded import free_local_port
from trainyard.main import create_app

from ..conftest import LiveServer, make_settings, run_server
from .openai_stub import OpenAIStub, call_tool, fail, hang, plan, say

ASK = "train yolo11n on my shapes dataset for 50 epochs on 2 GPUs"
SHAPES = DatasetSummary(name="shapes", status="valid", format="yolo", classes=3, images=80)


class FakeContext:
    """An in-memory PlannerContext: the unit under test is the LLM path, not the database."""

    def __init__(self) -> None:
        self.checked: list[PlanDraft] = []

    async def datasets(self) -> list[DatasetSummary]:
        return [SHAPES]

    async def models(self) -> dict[str, list[str]]:
        return {"ultralytics": ["yolo11n.yaml", "yolo11n.pt"]}

    async def recent_jobs(self, limit: int = 5) -> list[JobSummary]:
        return []

    async def problems(self, draft: PlanDraft) -> list[str]:
        self.checked.append(draft)
        gpus = draft.request.gpus
        return (
            [f"Trainyard allows at most 8 GPUs per job (you asked for {gpus})."]
            if (gpus is not None and gpus > 8)
            else []
        )


@pytest.fixture
def stub() -> Iterator[tuple[OpenAIStub, LiveServer]]:
    scripted = OpenAIStub()
    with run_server(scripted.app()) as server:
        yield scripted, server


def config_for(server_url: str, timeout_s: float = 20.0) -> LlmConfig:
    return LlmConfig(base_url=f"{server_url}/v1", model="stub-model", api_key=None,
                     timeout_s=timeout_s)  # fmt: skip


def conversation(*messages: str) -> list[ChatTurn]:
    roles = ["user", "assistant"]
    return [
        ChatTurn.model_validate({"role": roles[i % 2], "content": m})
        for i, m in enumerate(messages)
    ]


async def test_the_models_structured_output_is_the_draft(
    stub: tuple[OpenAIStub, LiveServer],
) -> None:
    scripted, server = stub
    scripted.steps = [plan(model="yolo11n", dataset="shapes", epochs=50, gpus=2)]

    draft = await draft_with_llm(config_for(server.http_url), conversation(ASK), FakeContext())

    assert draft.request == PlanRequest(model="yolo11n", dataset="shapes", epochs=50, gpus=2)
    [request] = scripted.requests
    user_messages = [m for m in request["messages"] if m["role"] == "user"]
    assert [m["content"] for m in user_messages] == [ASK]
    # The user's words reach the model as their own message and nowhere else.
    others = json.dumps([m for m in request["messages"] if m["role"] != "user"])
    assert ASK not in others
    assert ASK not in json.dumps(request.get("tools", []))


async def test_earlier_turns_go_to_the_model_as_its_message_history(
    stub: tuple[OpenAIStub, LiveServer],
) -> None:
    scripted, server = stub
    scripted.steps = [plan(model="yolo11n", dataset="shapes", epochs=20)]

    await draft_with_llm(
        config_for(server.http_url),
        conversation(ASK, "Here is the plan: …", "make it 20 epochs"),
        FakeContext(),
    )

    roles = [(m["role"], m.get("content")) for m in scripted.messages(0) if m["role"] != "system"]
    assert roles == [
        ("user", ASK),
        ("assistant", "Here is the plan: …"),
        ("user", "make it 20 epochs"),
    ]


async def test_the_model_may_look_up_the_users_datasets_with_a_tool(
    stub: tuple[OpenAIStub, LiveServer],
) -> None:
    scripted, server = stub
    scripted.steps = [call_tool("list_datasets", {}), plan(model="yolo11n", dataset="shapes")]

    draft = await draft_with_llm(
        config_for(server.http_url), conversation("train yolo11n on my dataset"), FakeContext()
    )

    assert draft.request.dataset == "shapes"
    tool_results = [m for m in scripted.messages(1) if m["role"] == "tool"]
    assert len(tool_results) == 1
    assert json.loads(tool_results[0]["content"])[0]["name"] == "shapes"


async def test_a_draft_that_cannot_run_goes_back_to_the_model_with_the_reasons(
    stub: tuple[OpenAIStub, LiveServer],
) -> None:
    scripted, server = stub
    scripted.steps = [
        plan(model="yolo11n", dataset="shapes", gpus=10000),
        plan(model="yolo11n", dataset="shapes", gpus=8),
    ]
    context = FakeContext()

    draft = await draft_with_llm(
        config_for(server.http_url), conversation("yolo11n on shapes on 10000 gpus"), context
    )

    assert draft.request.gpus == 8
    assert [d.request.gpus for d in context.checked] == [10000, 8]
    retry = json.dumps(scripted.messages(1)[-1])
    assert "at most 8 GPUs per job (you asked for 10000)" in retry


async def test_a_model_that_never_fixes_its_draft_leaves_the_problem_to_the_card(
    stub: tuple[OpenAIStub, LiveServer],
) -> None:
    scripted, server = stub
    scripted.steps = [plan(model="yolo11n", dataset="shapes", gpus=10000) for _ in range(3)]

    draft = await draft_with_llm(
        config_for(server.http_url), conversation("yolo11n on 10000 gpus"), FakeContext()
    )

    # Not "down": the draft stands and completion turns the problem into a question.
    assert draft.request.gpus == 10000
    assert len(scripted.requests) == 3


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ([fail(500)] * 3, "status_code: 500"),
        ([say("I like trains!")] * 6, "UnexpectedModelBehavior"),
        ([call_tool(None, {"request": {"epochs": "many"}})] * 6, "UnexpectedModelBehavior"),
    ],
    ids=["http-500", "prose-instead-of-a-plan", "output-that-never-validates"],
)
async def test_a_failing_model_is_llm_unavailable_never_a_crash(
    stub: tuple[OpenAIStub, LiveServer], steps: list[Any], why: str
) -> None:
    scripted, server = stub
    scripted.steps = list(steps)

    with pytest.raises(LlmUnavailable, match=why):
        await draft_with_llm(config_for(server.http_url), conversation(ASK), FakeContext())


async def test_a_server_that_is_down_is_llm_unavailable() -> None:
    with pytest.raises(LlmUnavailable, match="Connection"):
        await draft_with_llm(
            config_for(f"http://127.0.0.1:{free_local_port()}"), conversation(ASK), FakeContext()
        )


async def test_a_model_slower_than_the_timeout_is_given_up_on_time(
    stub: tuple[OpenAIStub, LiveServer],
) -> None:
    scripted, server = stub
    scripted.steps = [hang(30)] * 3
    started = time.monotonic()

    with pytest.raises(LlmUnavailable, match="within 1s"):
        await draft_with_llm(
            config_for(server.http_url, timeout_s=1), conversation(ASK), FakeContext()
        )

    assert time.monotonic() - started < 5


async def test_pydantic_ais_test_model_drives_the_tools_and_the_output() -> None:
    model = TestModel(
        custom_output_args={"request": {"model": "yolo11n", "dataset": "shapes"}},
        call_tools=["list_datasets", "list_models", "recent_jobs"],
    )

    draft = await draft_with_llm(config_for("http://unused"), conversation(ASK), FakeContext(),
                                 model=model)  # fmt: skip

    assert (draft.request.model, draft.request.dataset) == ("yolo11n", "shapes")


async def test_a_function_model_corrected_by_the_validator() -> None:
    answers = iter([{"gpus": 64}, {"gpus": 4}])

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        tool = info.output_tools[0].name
        return ModelResponse(parts=[ToolCallPart(tool, {"request": next(answers)})])

    context = FakeContext()
    draft = await draft_with_llm(config_for("http://unused"), conversation(ASK), context,
                                 model=FunctionModel(respond))  # fmt: skip

    assert draft.request.gpus == 4
    assert [d.request.gpus for d in context.checked] == [64, 4]


async def test_the_chat_api_falls_back_to_the_grammar_parser_with_a_notice(
    tmp_path: Path, temporal_address: str
) -> None:
    settings = make_settings(
        tmp_path / "data",
        temporal_address,
        llm_base_url=f"http://127.0.0.1:{free_local_port()}/v1",
        llm_model="stub-model",
        llm_timeout_s=5.0,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test"
        ) as api,
    ):
        response = await api.post("/v1/chat", json={"message": ASK})

    assert response.status_code == 200
    reply = response.json()
    assert reply["planner"] == "grammar"
    assert "language model is unavailable" in reply["notice"]
    assert reply["plan"]["request"]["epochs"] == 50


async def test_the_chat_api_plans_with_the_configured_model(
    stub: tuple[OpenAIStub, LiveServer], tmp_path: Path, temporal_address: str
) -> None:
    scripted, server = stub
    scripted.steps = [plan(model="yolo11n", epochs=7), plan(model="yolo11n", epochs=7)]
    settings = make_settings(
        tmp_path / "data",
        temporal_address,
        llm_base_url=f"{server.http_url}/v1",
        llm_model="stub-model",
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test"
        ) as api,
    ):
        reply = (await api.post("/v1/chat", json={"message": "yolo11n for 7 epochs"})).json()

    assert (reply["planner"], reply["notice"]) == ("llm", None)
    assert reply["plan"]["request"]["epochs"] == 7
    # No dataset named: a question on the card, never a guess.
    assert [q["field"] for q in reply["plan"]["questions"]] == ["dataset"]
