"""The job state machine: one definition for the backend (which writes every state) and the
worker (which asks for transitions and reads states). Pure, so the workflow sandbox imports it.

PENDING -> VALIDATING -> QUEUED -> STARTING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED

QUEUED: validated, waiting for admission (capacity, quotas: the backend's trainyard/admission);
a job admitted at once skips it. The one move back: a STARTING or RUNNING job preempted by one
of higher priority goes back to QUEUED (`requeue`), and runs again from its checkpoint.

A transition only moves forward (steps may be skipped); once a job is terminal nothing moves
it again, so the first terminal transition wins.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def rank(self) -> int:
        # All terminal states share the last rank: none may follow another.
        return _RANK.get(self, len(_RANK))


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# What a trainer's `done` status (docs/trainer-contract.md) ends its job in.
DONE_STATUS_TO_STATE = {
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}

_RANK = {
    JobState.PENDING: 0,
    JobState.VALIDATING: 1,
    JobState.QUEUED: 2,
    JobState.STARTING: 3,
    JobState.RUNNING: 4,
}


class TransitionVerdict(StrEnum):
    APPLY = "apply"
    # Asking for the state the job is already in (not terminal): an idempotent retry.
    ALREADY = "already"
    TERMINAL = "terminal"
    BACKWARDS = "backwards"


# The states a preempted job may be sent back to QUEUED from: those its trainer runs in.
REQUEUABLE_STATES = frozenset({JobState.STARTING, JobState.RUNNING})


def judge(current: JobState, target: JobState, requeue: bool = False) -> TransitionVerdict:
    """What moving a job from `current` to `target` would be; `requeue`: the move is a
    preemption's, back to QUEUED."""
    if current.terminal:
        return TransitionVerdict.TERMINAL
    if target == current:
        return TransitionVerdict.ALREADY
    if requeue and target == JobState.QUEUED and current in REQUEUABLE_STATES:
        return TransitionVerdict.APPLY
    if target.rank <= current.rank:
        return TransitionVerdict.BACKWARDS
    return TransitionVerdict.APPLY
