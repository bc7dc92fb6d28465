"""The language-model planner: pydantic-ai with `PlanDraft` as its structured output.

Any OpenAI-compatible server works (vLLM, Ollama, OpenAI): `TRAINYARD_LLM_BASE_URL`,
`TRAINYARD_LLM_MODEL` and, where the server wants one, `TRAINYARD_LLM_API_KEY`. The model may
look up the user's datasets, the models Trainyard can train and the user's recent jobs (tools);
a draft that cannot run as asked goes back to it with the reasons (output validator) a couple
of times. The user's words only ever travel as chat messages to the model. Any failure of the
model (down, timeout, HTTP error, output that never validates) is `LlmUnavailable`: the caller
falls back to the grammar parser and tells the user. Given `on_draft`, the model's answer is
streamed and each readable stage of the draft it is writing goes there as it arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

from openai import AsyncOpenAI
from pydantic import TypeAdapter, ValidationError
from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.messages import (
    AgentStreamEvent,
    FinalResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    ToolCallPart,
    ToolCallPartDelta,
)
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import UsageLimits

from trainyard.chat.plan import ChatTurn, PlanDraft, PlannerContext
from trainyard.core.settings import BackendSettings

# Times a draft with problems goes back to the model; after that the draft stands and its
# problems become questions on the card (a model that cannot fix them is not "down").
CORRECTIONS = 2
_REQUEST_LIMIT = 8

INSTRUCTIONS = """\
You turn a user's request for a training run into a PlanDraft for Trainyard, a training
platform. Fill only what the user asked for or clearly implied; leave every other field null.
Never guess the model or the dataset: if either is missing or unclear, leave it null and add a
question. Use the tools to see the user's datasets, the models Trainyard can train and the
user's recent jobs. "Like my last run but ..." means: copy the newest recent job's fields, set
based_on_job to its id, then apply the changes. Fields: framework (inferred from the model),
model (e.g. yolo11n.yaml to train from scratch, yolo11n.pt for pretrained weights), dataset (a
dataset name from list_datasets, or a file:// or s3:// URI), epochs, imgsz (multiple of 32),
batch, gpus (0 = CPU). Put anything ambiguous into questions, one per field."""


DraftSink = Callable[[PlanDraft], None]
_PARTIAL_DRAFT = TypeAdapter(PlanDraft)


class LlmUnavailable(Exception):
    """The language model could not produce a plan; the message says why, briefly."""


@dataclass(frozen=True)
class LlmConfig:
    base_url: str
    model: str
    api_key: str | None
    timeout_s: float


def llm_config_from(settings: BackendSettings) -> LlmConfig | None:
    """The configured language model, or None: then the grammar parser plans alone."""
    if not settings.llm_base_url or not settings.llm_model:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return LlmConfig(settings.llm_base_url, settings.llm_model, key, settings.llm_timeout_s)


def openai_compatible_model(config: LlmConfig) -> Model:
    client = AsyncOpenAI(
        base_url=config.base_url,
        # Local servers (vLLM, Ollama) want no key, but the OpenAI client insists on one.
        api_key=config.api_key or "unused",
        timeout=config.timeout_s,
        # One retry of a 5xx or a dropped connection; the whole call is bounded anyway.
        max_retries=1,
    )
    return OpenAIChatModel(config.model, provider=OpenAIProvider(openai_client=client))


_agent: Agent[PlannerContext, PlanDraft] = Agent(
    output_type=PlanDraft,
    deps_type=PlannerContext,  # a protocol: any context will do
    instructions=INSTRUCTIONS,
    retries={"tools": 1, "output": CORRECTIONS + 1},
)


@_agent.tool
async def list_datasets(ctx: RunContext[PlannerContext]) -> list[dict[str, Any]]:
    """The user's datasets: name, validation status, format, classes and images."""
    return [summary.model_dump() for summary in await ctx.deps.datasets()]


@_agent.tool
async def list_models(ctx: RunContext[PlannerContext]) -> dict[str, list[str]]:
    """Example model names Trainyard can train, per framework."""
    return await ctx.deps.models()


@_agent.tool
async def recent_jobs(ctx: RunContext[PlannerContext]) -> list[dict[str, Any]]:
    """The user's newest jobs (newest first) with their request fields and state."""
    return [job.model_dump() for job in await ctx.deps.recent_jobs()]


@_agent.output_validator
async def check_draft(ctx: RunContext[PlannerContext], draft: PlanDraft) -> PlanDraft:
    problems = await ctx.deps.problems(draft)
    if problems and ctx.retry < CORRECTIONS:
        raise ModelRetry(
            "This plan cannot run as it is:\n- "
            + "\n- ".join(problems)
            + "\nFix what the conversation answers; turn the rest into questions."
        )
    return draft


def message_history(conversation: list[ChatTurn]) -> list[ModelMessage]:
    """Every turn before the last user message, as the model's message history."""
    history: list[ModelMessage] = []
    for turn in conversation[:-1]:
        if turn.role == "user":
            history.append(ModelRequest.user_text_prompt(turn.content))
        else:
            history.append(ModelResponse(parts=[TextPart(content=turn.content)]))
    return history


async def draft_with_llm(
    config: LlmConfig,
    conversation: list[ChatTurn],
    context: PlannerContext,
    *,
    model: Model | None = None,
    on_draft: DraftSink | None = None,
) -> PlanDraft:
    """The model's reading of `conversation` (its last turn is the user's new message).

    `model` replaces the configured server (pydantic-ai's test models, for instance).
    `on_draft` gets the draft while the model writes it (a draft sent back for correction
    starts again); the returned draft is the one that stands.
    """
    if not conversation or conversation[-1].role != "user":
        raise ValueError("the conversation must end with the user's message")
    try:
        async with asyncio.timeout(config.timeout_s):
            result = await _agent.run(
                conversation[-1].content,
                message_history=message_history(conversation),
                model=model or openai_compatible_model(config),
                deps=context,
                usage_limits=UsageLimits(request_limit=_REQUEST_LIMIT),
                event_stream_handler=_stream_drafts_to(on_draft) if on_draft else None,
            )
    except TimeoutError as exc:
        raise LlmUnavailable(f"no answer within {config.timeout_s:g}s") from exc
    except Exception as exc:  # any failure of a remote model means "plan without it"
        raise LlmUnavailable(_short(exc)) from exc
    return result.output


def _stream_drafts_to(
    sink: DraftSink,
) -> Callable[[RunContext[PlannerContext], AsyncIterable[AgentStreamEvent]], Any]:
    """An event handler for one streamed model response: the output tool's arguments, parsed
    as far as they go, to `sink` each time they read as a draft that says more."""

    async def handle(
        ctx: RunContext[PlannerContext], events: AsyncIterable[AgentStreamEvent]
    ) -> None:
        calls: dict[int, ToolCallPart] = {}
        output_tool: str | None = None
        last = PlanDraft()
        async for event in events:
            if isinstance(event, PartStartEvent) and isinstance(event.part, ToolCallPart):
                calls[event.index] = event.part
            elif isinstance(event, FinalResultEvent):
                output_tool = event.tool_name  # the tool whose arguments are the draft
            elif (
                isinstance(event, PartDeltaEvent)
                and isinstance(event.delta, ToolCallPartDelta)
                and event.index in calls
            ):
                call = event.delta.apply(calls[event.index])
                if not isinstance(call, ToolCallPart):
                    continue
                calls[event.index] = call
                if call.tool_name != output_tool or not isinstance(call.args, str):
                    continue
                # A number at the very end may still grow (gpus 1 of 16): leave it out.
                args = call.args.rstrip("0123456789.+-eE")
                try:
                    draft = _PARTIAL_DRAFT.validate_json(args, experimental_allow_partial=True)
                except ValidationError:  # cut inside an item that lacks a required field yet
                    continue
                if draft != last:
                    sink(draft)
                    last = draft

    return handle


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
