"""Public chat API: /v1/chat (the planner behind the web UI's chat panel)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Response, status
from fastapi.responses import StreamingResponse

from trainyard.chat import service
from trainyard.chat.plan import TrainingPlan
from trainyard.chat.schemas import (
    ChatReply,
    ChatRequest,
    ConversationPage,
    ConversationRead,
    PlanCheck,
    StartRequest,
)
from trainyard.deps import CurrentOwner, SessionDep, Settings, Storage, Temporal
from trainyard.jobs.schemas import JobRead

router = APIRouter(prefix="/v1/chat", tags=["chat"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255),
]
# Words with their following space: the stream sends the reply a few words at a time.
_CHUNK = re.compile(r"\S+\s*|\s+")
_WORDS_PER_DELTA = 3


@router.post("", response_model=ChatReply)
async def chat(
    body: ChatRequest, session: SessionDep, settings: Settings, owner: CurrentOwner
) -> ChatReply:
    """Send a message; the reply carries the plan card (or the questions to answer first).

    Without `conversation_id` a new conversation starts. Nothing runs until the plan is
    started with `POST /v1/chat/{id}/start`.
    """
    return await service.chat(session, settings, owner, body)


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def chat_stream(
    body: ChatRequest, session: SessionDep, settings: Settings, owner: CurrentOwner
) -> StreamingResponse:
    """As `POST /v1/chat`, streamed as NDJSON: `{"type": "delta", "text": …}` lines with the
    reply as it is written, then one `{"type": "reply", …ChatReply}` line."""
    reply = await service.chat(session, settings, owner, body)
    return StreamingResponse(_ndjson(reply), media_type="application/x-ndjson")


async def _ndjson(reply: ChatReply) -> AsyncIterator[str]:
    words = _CHUNK.findall(reply.text)
    for start in range(0, len(words), _WORDS_PER_DELTA):
        text = "".join(words[start : start + _WORDS_PER_DELTA])
        yield json.dumps({"type": "delta", "text": text}) + "\n"
    yield json.dumps({"type": "reply", **reply.model_dump(mode="json")}) + "\n"


@router.post("/plan", response_model=TrainingPlan)
async def check_plan(
    body: PlanCheck, session: SessionDep, settings: Settings, owner: CurrentOwner
) -> TrainingPlan:
    """Check an edited plan card again: assumptions, questions, dataset and estimate."""
    return await service.check_plan(session, settings, owner, body.request)


@router.get("", response_model=ConversationPage)
async def list_conversations(session: SessionDep, owner: CurrentOwner) -> ConversationPage:
    """The owner's conversations, newest first, with the jobs they started."""
    return ConversationPage(items=await service.list_conversations(session, owner))


@router.get("/{conversation_id}", response_model=ConversationRead)
async def read_conversation(
    conversation_id: str, session: SessionDep, owner: CurrentOwner
) -> ConversationRead:
    return await service.read_conversation(session, owner, conversation_id)


@router.post(
    "/{conversation_id}/start", status_code=status.HTTP_201_CREATED, response_model=JobRead
)
async def start(
    conversation_id: str,
    body: StartRequest,
    response: Response,
    session: SessionDep,
    settings: Settings,
    storage: Storage,
    temporal: Temporal,
    owner: CurrentOwner,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    """Start the confirmed plan: the same submission as `POST /v1/jobs` (422 with the plan's
    open questions when it is not ready; an Idempotency-Key replays the first job)."""
    submission = await service.start(
        session, settings, storage, temporal, owner, conversation_id, body, idempotency_key
    )
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobRead.model_validate(submission.job)
