"""A local OpenAI-compatible server for the LLM planner's tests: POST /v1/chat/completions
answers from a script, one step per request, and records every request it got. A request
with `stream: true` gets its answer as server-sent events, a few characters per chunk, as a
real server sends the tokens it generates."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Step = Callable[[dict[str, Any]], Any]
_CHUNK_CHARS = 8  # characters of text or tool-call arguments per streamed chunk
_RELEASED = threading.Event()  # an answer that is not held
_RELEASED.set()


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
class Held:
    """An answer whose stream stops before its last token until `release` is set: whatever
    reached the client by then travelled while the model was still writing. `finished` is
    set once the last chunk is out; not released within `patience_s`, the stream breaks off."""

    answer: dict[str, Any]
    release: threading.Event
    patience_s: float = 10.0
    finished: threading.Event = field(default_factory=threading.Event)


def held(step: Step, release: threading.Event, patience_s: float = 10.0) -> tuple[Step, Held]:
    """`step`'s answer held back before its last token (see `Held`), and the hold itself."""
    hold = Held({}, release, patience_s)

    def holding(request: dict[str, Any]) -> Held:
        hold.answer = step(request)
        return hold

    return holding, hold


def chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat completion as the chunks a streaming server sends for it."""
    [choice] = answer["choices"]
    message = choice["message"]
    head = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def pieces(text: str) -> list[str]:
        return [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)]

    sent = [chunk({"role": "assistant"})]
    sent += [chunk({"content": piece}) for piece in pieces(message.get("content") or "")]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        start = {"name": function["name"], "arguments": ""}
        opening = {"index": index, "id": call["id"], "type": "function", "function": start}
        sent.append(chunk({"tool_calls": [opening]}))
        sent += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in pieces(function["arguments"])
        ]
    sent.append(chunk({}, choice["finish_reason"]))
    sent.append(head | {"choices": [], "usage": answer["usage"]})
    return sent


async def _events(answer: dict[str, Any] | Held) -> AsyncIterator[str]:
    hold = answer if isinstance(answer, Held) else Held(answer, _RELEASED)
    sent = chunks(hold.answer)
    last_token = len(sent) - 3  # then the finish reason and the usage
    for index, chunk in enumerate(sent):
        wait = index == last_token and not hold.release.is_set()
        if wait and not await asyncio.to_thread(hold.release.wait, hold.patience_s):
            raise RuntimeError("held answer never released: the stream breaks off")
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"
    hold.finished.set()


async def _whole(hold: Held) -> dict[str, Any]:
    """A held answer to a request that did not ask for a stream: all or nothing."""
    if not await asyncio.to_thread(hold.release.wait, hold.patience_s):
        return completion({"role": "assistant", "content": "never released"}, "stop")
    hold.finished.set()
    return hold.answer


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
            if isinstance(answer, Response):
                return answer
            if body.get("stream"):
                return StreamingResponse(_events(answer), media_type="text/event-stream")
            return JSONResponse(await _whole(answer) if isinstance(answer, Held) else answer)

        return FastAPI(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])

    def messages(self, index: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.requests[index]["messages"]
        return messages
