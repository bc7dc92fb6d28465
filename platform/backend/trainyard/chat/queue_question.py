"""Why is my run waiting? The chat answers from the admission ledger, not from a planner.

The question is recognised by a few patterns (deterministic, with or without a language
model); the answer names the project's newest QUEUED job, its place, the reason it waits
and, when the running jobs' ETAs allow, when it should start.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.queue_status import queue_statuses
from trainyard.chat.reply import format_duration
from trainyard.jobs.models import Job
from trainyard.jobs.schemas import QueueStatus
from trainyard_workflows.job_states import JobState

_WAITING = r"(?:wait\w*|queued?|queuing|pending|stuck|start\w*|running|begin\w*|taking so long)"
_QUESTION = re.compile(
    rf"\bwhy\b.*\b{_WAITING}\b"
    r"|\bwhen\b.*\b(?:start|begin)\w*\b"
    r"|\b(?:position|place|where)\b.*\bqueue\b"
    r"|\bwhat\b.*\bwaiting\s+(?:for|on)\b"
    r"|\bhow\s+(?:long|far)\b.*\b(?:wait|queue)\w*\b",
    re.IGNORECASE,
)
# What the question is about: a run, never a request to plan one ("train ... and start it").
_ABOUT_A_RUN = re.compile(r"\b(?:my|the|our|this|it|its)\b|\bruns?\b|\bjobs?\b", re.IGNORECASE)
_A_REQUEST = re.compile(r"^\s*(?:please\s+)?(?:train|fine-?tune|finetune|retrain)\b", re.IGNORECASE)


def is_queue_question(message: str) -> bool:
    """True for "why is my run waiting?" and close variants ("why hasn't my job started",
    "when will my training start", "where is my job in the queue")."""
    if _A_REQUEST.search(message):
        return False
    return bool(_QUESTION.search(message)) and bool(_ABOUT_A_RUN.search(message))


async def queue_answer(session: AsyncSession, project_id: str, now: datetime) -> str:
    """The answer about the project's newest QUEUED job (or why none waits)."""
    newest = select(Job).where(Job.project_id == project_id)
    order = (Job.created_at.desc(), Job.id.desc())
    query = newest.where(Job.state == JobState.QUEUED.value).order_by(*order).limit(1)
    queued = (await session.execute(query)).scalar_one_or_none()
    if queued is None:
        latest = (await session.execute(newest.order_by(*order).limit(1))).scalar_one_or_none()
        if latest is None:
            return "None of your runs is waiting: this project has no runs yet."
        return (
            f"None of your runs is waiting in the queue: the newest, {_name(latest)}, "
            f"is {latest.state}."
        )
    status = (await queue_statuses(session, [queued])).get(queued.id)
    if status is None:  # it left the queue between the two reads
        return f"Your run {_name(queued)} is leaving the queue: it is starting."
    return _waiting(queued, status, now)


def _waiting(job: Job, status: QueueStatus, now: datetime) -> str:
    place = f"is #{status.position} in the queue" if status.position else "is next"
    lines = [f"Your run {_name(job)} {place}: {status.reason}."]
    if status.estimated_start is not None:
        seconds = max(0.0, (status.estimated_start - now).total_seconds())
        lines.append(
            f"It should start in about {format_duration(seconds)} (from the running jobs' ETAs)."
        )
    else:
        lines.append("There is no estimate of when it starts yet.")
    return "\n".join(lines)


def _name(job: Job) -> str:
    return f"{job.id} ({job.model} on {job.dataset})"
