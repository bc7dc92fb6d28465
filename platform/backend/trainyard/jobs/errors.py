"""Errors of the jobs domain (mapped to HTTP by core.errors)."""

from __future__ import annotations

from trainyard.core.errors import Conflict, NotFound


class JobNotFound(NotFound):
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} does not exist")


class JobTerminal(Conflict):
    """The job already ended; nothing may change its state again."""

    code = "job_terminal"

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"job {job_id} is already {state}")
        self.state = state


class TransitionRefused(Conflict):
    code = "transition_refused"

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(
            f"job {job_id} cannot move from {current} back to {target} (states only move forward)"
        )
