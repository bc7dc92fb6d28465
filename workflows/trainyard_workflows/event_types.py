"""The types of a job's timeline events, for everyone who writes one (backend, worker, trainers'
callbacks): the platform's own, which nobody else may forge, and the shape of the others."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

# Event types the platform writes itself; a trainer (or the worker) may not forge them, since
# clients act on them (a `state` event to a terminal state closes every live stream).
# A queued job's place and why it waits (`data`: position, gpus_ahead, hold, reason), written
# after an admission pass that changed them.
QUEUE = "queue"
# A running job gave way to one of higher priority (`data`: by, attempt) and waits again.
PREEMPTED = "preempted"
RESERVED_EVENT_TYPES = frozenset(
    {"submitted", "state", "heartbeat", "done", "cancel_requested", "attempt", QUEUE, PREEMPTED}
)
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# A trainer's announcement of a checkpoint a later attempt may resume from (its `data`: path,
# epoch, size, sha256; the backend checks them, docs/trainer-contract.md).
CHECKPOINT_SAVED = "checkpoint_saved"


def _not_reserved(value: str) -> str:
    if value in RESERVED_EVENT_TYPES:
        raise ValueError(f"{value!r} is reserved for events the platform writes itself")
    return value


EventType = Annotated[str, Field(pattern=EVENT_TYPE_PATTERN), AfterValidator(_not_reserved)]
