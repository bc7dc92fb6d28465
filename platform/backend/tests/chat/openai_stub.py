"""A local OpenAI-compatible server for the LLM planner's tests: POST /v1/chat/completions
answers from a script, one step per request, and records every request it got."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Step = Callable[[dict[str, Any]], Any]


def output_tool(request: dict[str, Any]) -> str:
    """The name pydantic-ai gave the structured-output tool in this request."""
    names: list[str] = [tool["function"]["name"] for tool in request.get("tools", [])]
    return next(name for name in names if name.startswith("final_result"))


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def call_tool(name: str | None, arguments: dict[str, Any]) -> Step:
    """A step answering with one tool call (`None`: the structured-output tool)."""

    def step(request: dict[str, Any]) -> dict[str, Any]:
        tool = name or output_tool(request)
        call = {
            "id": f"call_{tool}",
            "type": "function",
            "function": {"name": tool, "arguments": json.dumps(arguments)},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return completion(message, "tool_calls")

    return step


def plan(**request: Any) -> Step:
    """A step answering with a PlanDraft holding `request`."""
    return call_tool(None, {"request": request, "questions": []})


def say(text: str) -> Step:
    def step(request: dict[str, Any]) -> dict[str, Any]:
        return completion({"role": "assistant", "content": text}, "stop")

    return step


def fail(status: int) -> Step:
    def step(request: dict[str, Any]) -> Response:
        return JSONResponse({"error": {"message": "stub failure", "type": "server_error"}}, status)

    return step


def hang(seconds: float) -> Step:
    async def step(request: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return completion({"role": "assistant", "content": "late"}, "stop")

    return step


@dataclass
class OpenAIStub:
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        async def completions(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            if not self.steps:
                return JSONResponse({"error": {"message": "script exhausted"}}, 500)
            answer = self.steps.pop(0)(body)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return answer if isinstance(answer, Response) else JSONResponse(answer)

        return FastAPI(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])

    def messages(self, index: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.requests[index]["messages"]
        return messages
