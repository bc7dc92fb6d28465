"""Request and response bodies of the chat API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trainyard.chat.plan import PlannerName, PlanRequest, TrainingPlan

MAX_MESSAGE_CHARS = 4000


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = Field(default=None, max_length=64)
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class ChatReply(BaseModel):
    conversation_id: str
    message_id: str
    text: str
    plan: TrainingPlan | None
    planner: PlannerName
    # Set when the planner had to fall back (the language model is down or answered garbage).
    notice: str | None = None


class PlanCheck(BaseModel):
    """An edited plan card, to be checked again."""

    model_config = ConfigDict(extra="forbid")

    request: PlanRequest


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: PlanRequest
    # The assistant message whose plan is started (its job id is recorded there).
    message_id: str | None = Field(default=None, max_length=64)


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    role: Literal["user", "assistant"]
    content: str
    plan: TrainingPlan | None
    planner: str | None
    notice: str | None
    job_id: str | None
    created_at: datetime


class ConversationRead(BaseModel):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    messages: list[MessageRead]


class ConversationSummary(BaseModel):
    id: str
    title: str
    updated_at: datetime
    job_ids: list[str]


class ConversationPage(BaseModel):
    items: list[ConversationSummary]
