"""Public chat API: /v1/chat (the planner behind the web UI's chat panel)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response, status
from fastapi.responses import StreamingResponse

from trainyard.auth.principal import Access
from trainyard.chat import service
from trainyard.chat.plan import PlanDraft, TrainingPlan
from trainyard.chat.schemas import (
    ChatReply,
    ChatRequest,
    ConversationPage,
    ConversationRead,
    PlanCheck,
    StartRequest,
)
from trainyard.core.db import Database
from trainyard.core.errors import SIGNED_IN_RESPONSES, TrainyardError, error_responses
from trainyard.core.rate_limits import RATE_LIMITED_RESPONSES
from trainyard.core.settings import BackendSettings
from trainyard.deps import (
    CanRead,
    CanSubmit,
    DatabaseDep,
    ProjectRead,
    ProjectSubmit,
    RateLimited,
    SessionDep,
    Settings,
    Storage,
    Workflows,
)
from trainyard.jobs.schemas import JobRead

logger = logging.getLogger(__name__)
# The body every unexpected failure gets (core.errors), as the stream's last line.
_INTERNAL_ERROR = {"detail": "internal error; see the API log", "code": "internal_error"}
router = APIRouter(prefix="/v1/chat", tags=["chat"], responses=SIGNED_IN_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255),
]


@router.post(
    "",
    response_model=ChatReply,
    responses={**error_responses(400, 404, 422), **RATE_LIMITED_RESPONSES},
    dependencies=[Depends(RateLimited("chat"))],
)
async def chat(
    body: ChatRequest, db: DatabaseDep, settings: Settings, access: ProjectSubmit
) -> ChatReply:
    """Send a message; the reply carries the plan card (or the questions to answer first).

    Without `conversation_id` a new conversation starts. Nothing runs until the plan is
    started with `POST /v1/chat/{id}/start`.
    """
    return await service.chat(db, settings, access, body)


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}},
        **error_responses(400, 404, 422),
        **RATE_LIMITED_RESPONSES,
    },
    dependencies=[Depends(RateLimited("chat"))],
)
async def chat_stream(
    body: ChatRequest,
    session: SessionDep,
    settings: Settings,
    access: ProjectSubmit,
    db: DatabaseDep,
) -> StreamingResponse:
    """As `POST /v1/chat`, streamed as NDJSON while the language model writes: a
    `{"type": "draft", …PlanDraft}` line each time its draft says more (what it has read so
    far; none from the grammar parser, which answers at once), then one
    `{"type": "reply", …ChatReply}` line once the turn is stored, or
    `{"type": "error", "detail", "code"}` if it could not be."""
    if body.conversation_id is not None:
        await service.check_conversation(session, access, body.conversation_id)
    # The stream outlives the request's unit of work: the turn opens its own.
    lines = _ndjson(db, settings, access, body)
    return StreamingResponse(lines, media_type="application/x-ndjson")


def _line(kind: str, fields: dict[str, Any]) -> str:
    return json.dumps({"type": kind, **fields}) + "\n"


async def _ndjson(
    database: Database, settings: BackendSettings, access: Access, body: ChatRequest
) -> AsyncIterator[str]:
    drafts: asyncio.Queue[PlanDraft | None] = asyncio.Queue()

    async def answer() -> ChatReply:
        try:
            # Stored before the reply line goes out: a client that reads the conversation as
            # soon as it has the reply sees it.
            return await service.chat(database, settings, access, body, drafts.put_nowait)
        finally:
            drafts.put_nowait(None)

    turn = asyncio.create_task(answer())
    try:
        while (draft := await drafts.get()) is not None:
            yield _line("draft", draft.model_dump(mode="json"))
        reply = await turn
    except TrainyardError as exc:
        yield _line("error", exc.body())
        return
    except Exception:
        logger.exception("chat stream: the reply could not be written")
        yield _line("error", _INTERNAL_ERROR)
        return
    finally:
        if not turn.done():  # the client went away: nothing more to write for it
            turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn
    yield _line("reply", reply.model_dump(mode="json"))


@router.post("/plan", response_model=TrainingPlan, responses=error_responses(400, 422))
async def check_plan(
    body: PlanCheck, session: SessionDep, settings: Settings, access: ProjectRead
) -> TrainingPlan:
    """Check an edited plan card again: assumptions, questions, dataset and estimate."""
    return await service.check_plan(session, settings, access, access.project, body.request)


@router.get("", response_model=ConversationPage)
async def list_conversations(session: SessionDep, access: ProjectRead) -> ConversationPage:
    """Your conversations in the project, newest first, with the jobs they started."""
    return ConversationPage(items=await service.list_conversations(session, access))


@router.get(
    "/{conversation_id}", response_model=ConversationRead, responses=error_responses(404, 422)
)
async def read_conversation(
    conversation_id: str, session: SessionDep, access: CanRead
) -> ConversationRead:
    return await service.read_conversation(session, access, conversation_id)


@router.post(
    "/{conversation_id}/start",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    responses={**error_responses(400, 404, 422), **RATE_LIMITED_RESPONSES},
    dependencies=[Depends(RateLimited("submit"))],  # it starts a run, as POST /v1/jobs
)
async def start(
    conversation_id: str,
    body: StartRequest,
    response: Response,
    session: SessionDep,
    settings: Settings,
    storage: Storage,
    workflows: Workflows,
    access: CanSubmit,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    """Start the confirmed plan: the same submission as `POST /v1/jobs` (422 with the plan's
    open questions when it is not ready; an Idempotency-Key replays the first job)."""
    submission = await service.start(
        session, settings, storage, workflows, access, conversation_id, body, idempotency_key
    )
    if not submission.created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobRead.model_validate(submission.job, context=settings)
