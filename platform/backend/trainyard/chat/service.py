"""Conversations with the planner: a message in, a reply with a plan card out, stored."""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.principal import Access
from trainyard.chat.completion import complete
from trainyard.chat.context import DatabaseContext, reading_with
from trainyard.chat.errors import ConversationNotFound, PlanNotReady
from trainyard.chat.llm_planner import DraftSink
from trainyard.chat.models import ChatMessage, Conversation
from trainyard.chat.plan import ChatTurn, PlanDraft, PlanRequest, TrainingPlan
from trainyard.chat.planner import Drafted, draft_plan
from trainyard.chat.queue_question import is_queue_question, queue_answer
from trainyard.chat.reply import reply_text
from trainyard.chat.schemas import (
    ChatReply,
    ChatRequest,
    ConversationRead,
    ConversationSummary,
    MessageRead,
    StartRequest,
)
from trainyard.core.db import Database, utcnow
from trainyard.core.settings import BackendSettings
from trainyard.jobs import service as jobs
from trainyard.jobs.workflow_starter import WorkflowStarter
from trainyard_workflows.storage import StorageSettings

_TITLE_CHARS = 80


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _is_theirs(conversation: Conversation, access: Access) -> bool:
    """A conversation is its author's, in a project they may still act in."""
    return conversation.owner == access.user_id and access.allows(conversation.project_id)


async def _conversation(
    session: AsyncSession, access: Access, conversation_id: str
) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not _is_theirs(conversation, access):
        raise ConversationNotFound(conversation_id)
    return conversation


async def _messages(session: AsyncSession, conversation_id: str) -> list[ChatMessage]:
    query = (
        select(ChatMessage)
        .where(ChatMessage.conversation_id == conversation_id)
        .order_by(ChatMessage.seq)
    )
    return list((await session.execute(query)).scalars())


async def check_conversation(session: AsyncSession, access: Access, conversation_id: str) -> None:
    """404 for a conversation that is not the caller's, while it can still be a status: a
    streamed reply has sent its status line before the answer is written."""
    await _conversation(session, access, conversation_id)


async def chat(
    db: Database,
    settings: BackendSettings,
    access: Access,
    body: ChatRequest,
    on_draft: DraftSink | None = None,
) -> ChatReply:
    """Answer one message (stored with the reply); `on_draft` sees the language model's draft
    as it is written. Three units of work: read the conversation, plan (the language model
    answers while no transaction is open; each lookup reads on its own), store the turn."""
    history: list[ChatTurn] = []
    if body.conversation_id is not None:
        async with db.session() as session:
            conversation = await _conversation(session, access, body.conversation_id)
            # A conversation goes on in its own project, whatever the request named.
            access = replace(access, project_id=conversation.project_id)
            history = [
                ChatTurn.model_validate({"role": m.role, "content": m.content})
                for m in await _messages(session, conversation.id)
            ]

    plan: TrainingPlan | None = None
    if is_queue_question(body.message):
        # Answered from the queue, not planned (no card): the same with or without a model.
        drafted = Drafted(PlanDraft(), "grammar")
        async with db.session() as session:
            text = await queue_answer(session, access.project, utcnow())
    else:
        role = access.principal.role_in(access.project)
        context = DatabaseContext(db.session, settings, access.project, role)
        drafted = await draft_plan(history, body.message, context, on_draft)
        plan = await complete(drafted.draft, context)
        text = reply_text(plan, drafted.draft.note)

    async with db.session() as session:
        conversation_id, reply_id = await _store_turn(session, access, body, text, plan, drafted)
    return ChatReply(
        conversation_id=conversation_id,
        message_id=reply_id,
        text=text,
        plan=plan,
        planner=drafted.planner,
        notice=drafted.notice,
    )


async def _store_turn(
    session: AsyncSession,
    access: Access,
    body: ChatRequest,
    text: str,
    plan: TrainingPlan | None,
    drafted: Drafted,
) -> tuple[str, str]:
    """The message and its reply, after whatever the conversation got meanwhile; (conversation
    id, reply id)."""
    now = utcnow()
    if body.conversation_id is None:
        conversation = Conversation(
            id=_new_id("conv"),
            project_id=access.project,
            owner=access.user_id,
            title=" ".join(body.message.split())[:_TITLE_CHARS],
            created_at=now,
            updated_at=now,
        )
        session.add(conversation)
        await session.flush()  # before its messages: they refer to it
        seq = 0
    else:
        # Locked: two turns of one conversation get consecutive seqs, not the same one.
        locked = select(Conversation).where(Conversation.id == body.conversation_id)
        found = (await session.execute(locked.with_for_update())).scalar_one_or_none()
        if found is None or not _is_theirs(found, access):
            raise ConversationNotFound(body.conversation_id)
        conversation = found
        conversation.updated_at = now
        count = select(func.count()).where(ChatMessage.conversation_id == conversation.id)
        seq = int((await session.execute(count)).scalar_one())
    session.add(
        ChatMessage(
            id=_new_id("msg"),
            conversation_id=conversation.id,
            seq=seq + 1,
            role="user",
            content=body.message,
            created_at=now,
        )
    )
    reply = ChatMessage(
        id=_new_id("msg"),
        conversation_id=conversation.id,
        seq=seq + 2,
        role="assistant",
        content=text,
        plan=plan.model_dump(mode="json") if plan is not None else None,
        planner=drafted.planner,
        notice=drafted.notice,
        created_at=now,
    )
    session.add(reply)
    return conversation.id, reply.id


async def check_plan(
    session: AsyncSession,
    settings: BackendSettings,
    access: Access,
    project_id: str,
    request: PlanRequest,
) -> TrainingPlan:
    """An edited card checked again (nothing stored), for the caller in `project_id`."""
    role = access.principal.role_in(project_id)
    context = DatabaseContext(reading_with(session), settings, project_id, role)
    return await complete(PlanDraft(request=request), context)


async def start(
    session: AsyncSession,
    settings: BackendSettings,
    storage: StorageSettings,
    workflows: WorkflowStarter,
    access: Access,
    conversation_id: str,
    body: StartRequest,
    idempotency_key: str | None,
) -> jobs.Submission:
    """Submit the confirmed plan as a job (422 with its questions if it is not ready)."""
    conversation = await _conversation(session, access, conversation_id)
    # The plan is checked and started in the conversation's project, whatever the request named.
    in_project = replace(access, project_id=conversation.project_id)
    plan = await check_plan(session, settings, access, conversation.project_id, body.request)
    if not plan.ready:
        raise PlanNotReady(plan.questions)
    submission = await jobs.submit(
        session, settings, storage, workflows, in_project, plan.job_create(), idempotency_key
    )
    if not submission.created:  # a replayed start: the first one recorded its job
        return submission
    messages = await _messages(session, conversation.id)
    proposals = [m for m in messages if m.role == "assistant" and m.plan is not None]
    chosen = next((m for m in proposals if m.id == body.message_id), None)
    if chosen is None and proposals:
        chosen = proposals[-1]
    if chosen is not None:
        # The plan as started (the card may have been edited since the reply).
        chosen.plan = plan.model_dump(mode="json")
        chosen.job_id = submission.job.id
    conversation.updated_at = utcnow()
    return submission


async def read_conversation(
    session: AsyncSession, access: Access, conversation_id: str
) -> ConversationRead:
    conversation = await _conversation(session, access, conversation_id)
    messages = await _messages(session, conversation.id)
    return ConversationRead(
        id=conversation.id,
        title=conversation.title,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        messages=[MessageRead.model_validate(m) for m in messages],
    )


async def list_conversations(
    session: AsyncSession, access: Access, limit: int = 50
) -> list[ConversationSummary]:
    """The caller's conversations in the project, newest first."""
    query = (
        select(Conversation)
        .where(Conversation.project_id == access.project, Conversation.owner == access.user_id)
        .order_by(Conversation.updated_at.desc())
        .limit(limit)
    )
    conversations = list((await session.execute(query)).scalars())
    jobs_of: dict[str, list[str]] = {c.id: [] for c in conversations}
    if conversations:
        started = await session.execute(
            select(ChatMessage.conversation_id, func.coalesce(ChatMessage.job_id, ""))
            .where(ChatMessage.conversation_id.in_(list(jobs_of)), ChatMessage.job_id.is_not(None))
            .order_by(ChatMessage.seq)
        )
        for conversation_id, job_id in started:
            jobs_of[conversation_id].append(job_id)
    return [
        ConversationSummary(id=c.id, title=c.title, updated_at=c.updated_at, job_ids=jobs_of[c.id])
        for c in conversations
    ]
