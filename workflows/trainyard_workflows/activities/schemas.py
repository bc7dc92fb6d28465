"""Inputs and results of the training activities: one dataclass each, so fields can be added
(with defaults) without breaking the histories of running workflows."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.launchers.base import AttemptHandle

# WatchResult.outcome values.
EXITED = "exited"
LOST = "lost"
# Stuck on a wait that does not end by itself (an image that cannot be pulled): given up.
UNSTARTABLE = "unstartable"
# The cluster took the attempt's pod away (preemption, eviction, node drain): the watch
# stopped the attempt so the next one resumes from the newest checkpoint.
DISRUPTED = "disrupted"


@dataclass(frozen=True)
class ReportStateInput:
    job_id: str
    # None: ask for no transition, only the job's state: the backend already decided it (a
    # trainer's `done` ends its job in callbacks.service.done, not in the workflow).
    state: str | None
    reason: str | None = None


@dataclass(frozen=True)
class ReportStateResult:
    """`applied` is False when the backend refused the move (409: already decided);
    `state` is then the job's current state, so the workflow can tell whether it ended."""

    applied: bool
    state: str


@dataclass(frozen=True)
class ValidateDatasetInput:
    job_id: str
    dataset_uri: str
    task: str = "detect"


@dataclass(frozen=True)
class LaunchTrainerInput:
    training: TrainingInput
    attempt: int
    # Why the previous attempt ended without a result (attempts after the first): the launch
    # puts it on the timeline with where the new attempt resumes from.
    retry_reason: str | None = None
    # The previous attempt was interrupted from outside (not counted against max_attempts).
    interrupted: bool = False


@dataclass(frozen=True)
class WatchTrainerInput:
    handle: AttemptHandle
    heartbeat_timeout_s: float


@dataclass(frozen=True)
class WatchResult:
    """How the watch ended: the process `exited` on its own, or was `lost` (no heartbeat for
    the timeout, so the watch stopped it)."""

    outcome: str
    exit_code: int | None
    log_tail: list[str] = field(default_factory=list)
    # Whether the backend had received the trainer's `done` callback when the watch ended.
    done_reported: bool = False
    # Why the attempt could not start (`unstartable`) or what took its pod (`disrupted`).
    reason: str | None = None


@dataclass(frozen=True)
class StopTrainerInput:
    handle: AttemptHandle


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    exit_code: int | None


@dataclass(frozen=True)
class AdmissionResult:
    """request_admission's answer (internal_api.AdmissionAnswer, as a workflow value)."""

    admitted: bool
    state: str
    refused: str | None = None
    position: int = 0
    reason: str = ""


@dataclass(frozen=True)
class RequeueInput:
    """request_requeue's input: attempt `attempt` of the job stopped, giving way to `by`."""

    job_id: str
    attempt: int
    by: str
