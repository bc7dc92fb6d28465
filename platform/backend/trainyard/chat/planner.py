"""Which planner reads the conversation: the language model when one is configured and
answers, else (or when it fails) the grammar parser, with a notice saying so."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from trainyard.chat import grammar
from trainyard.chat.context import DatabaseContext
from trainyard.chat.llm_planner import (
    DraftSink,
    LlmUnavailable,
    draft_with_llm,
    llm_config_from,
)
from trainyard.chat.plan import ChatTurn, PlanDraft, PlannerName

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drafted:
    draft: PlanDraft
    planner: PlannerName
    notice: str | None = None


async def draft_plan(
    history: list[ChatTurn],
    message: str,
    context: DatabaseContext,
    on_draft: DraftSink | None = None,
) -> Drafted:
    """`on_draft` sees the language model's draft while it is written (the grammar parser
    answers at once: nothing to see before the result)."""
    recent = await context.recent_jobs()
    config = llm_config_from(context.settings)
    if config is not None:
        try:
            conversation = [*history, ChatTurn(role="user", content=message)]
            draft = await draft_with_llm(config, conversation, context, on_draft=on_draft)
            return Drafted(draft, "llm")
        except LlmUnavailable as exc:
            logger.warning("LLM planner unavailable, using the grammar parser: %s", exc)
            notice = (
                f"The language model is unavailable ({exc}); I used the built-in parser, "
                "which understands the common phrasings."
            )
            return Drafted(grammar.parse(message, history, recent), "grammar", notice)
    return Drafted(grammar.parse(message, history, recent), "grammar")
