"""What a trainer's exit code means for its job, the reasons a job's timeline shows when a
trainer exits or an activity fails, and how an attempt or the workflow ends (pure: the
workflow sandbox imports this module). The states
themselves and what a `done` means are `job_states`'."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.exceptions import ActivityError

# A trainer that exits like this without a cancel request was stopped from outside.
STOPPED_EXIT_CODES = frozenset({143, -15})
# The contract's exit code for a bad environment: the same configuration fails the same way.
CONTRACT_ERROR_EXIT = 2

REASON_LOG_LINES = 5
MAX_REASON_CHARS = 2000


def exit_reason(exit_code: int | None, log_tail: list[str]) -> str:
    if exit_code is None:
        text = "trainer exited with an unknown code"
    elif exit_code < 0:
        text = f"trainer exited with code {exit_code} (killed by signal {-exit_code})"
    else:
        text = f"trainer exited with code {exit_code}"
    lines = [line.rstrip()[:500] for line in log_tail if line.strip()][-REASON_LOG_LINES:]
    if lines:
        text += ": " + "\n".join(lines)
    return text[:MAX_REASON_CHARS]


def activity_failure_reason(error: ActivityError) -> str:
    """`<activity> failed: <innermost message>`, e.g. the missing trainer environment."""
    cause: BaseException = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    message = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    return f"{error.activity_type} failed: {message}"[:MAX_REASON_CHARS]


@dataclass(frozen=True)
class TrainingResult:
    """The job's state when its workflow ended (as the backend has it) and why."""

    state: str
    reason: str | None = None
    attempt: int = 0  # 0: no trainer was launched


@dataclass(frozen=True)
class Retry:
    """The attempt ended without a result and the job has attempts left."""

    reason: str
    # Interrupted from outside: not counted against max_attempts.
    interrupted: bool = False
    # Preempted: gave way to this job; waits for admission again before the next attempt.
    preempted_by: str | None = None
