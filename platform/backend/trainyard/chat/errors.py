"""Errors of the chat domain (mapped to HTTP by core.errors)."""

from __future__ import annotations

from trainyard.chat.plan import Question
from trainyard.core.errors import FieldError, InvalidRequest, NotFound


class ConversationNotFound(NotFound):
    code = "conversation_not_found"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id} does not exist")


class PlanNotReady(InvalidRequest):
    """Start was pressed on a plan that still has open questions."""

    code = "plan_not_ready"

    def __init__(self, questions: list[Question]) -> None:
        super().__init__([FieldError(q.field or "plan", q.question) for q in questions])
