"""Types shared by the backend (which starts and signals workflows) and the worker.

Every workflow and activity takes one dataclass so fields can be added without breaking
running histories (add fields with defaults only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_NAME = "TrainingWorkflow"
TRAINER_DONE_SIGNAL = "trainer_done"
# The backend admitted the queued job (trainyard/admission): it may take its GPUs or CPU slot.
ADMITTED_SIGNAL = "admitted"
# The backend chose the running job to give way to one of higher priority (`Preempt`).
PREEMPT_SIGNAL = "preempt"
DEFAULT_TASK_QUEUE = "trainyard-training"


def workflow_id_for(job_id: str) -> str:
    """One workflow per job: the id makes a second start with the same job a no-op."""
    return f"training-{job_id}"


@dataclass(frozen=True)
class TrainingInput:
    """Everything the workflow needs; resolved by the backend when the job is submitted."""

    job_id: str
    framework: str
    model: str
    dataset_uri: str
    task: str
    epochs: int
    imgsz: int
    batch: int
    gpus: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # Seconds without a trainer heartbeat after which an attempt is declared lost.
    heartbeat_timeout_s: float = 120.0
    # Attempts a job may use: one that ends without a result (killed, crashed, lost) is
    # followed by the next, resuming from the newest checkpoint, until this many were used.
    max_attempts: int = 3
    # Attempts ended from outside (a pod preempted, evicted or drained; a trainer stopped by a
    # SIGTERM nobody on the platform sent) are not the trainer's failures and do not count
    # against max_attempts; this many at most, so a job cannot be bounced forever.
    max_interruptions: int = 10


@dataclass(frozen=True)
class TrainerDone:
    """Sent by the backend as the `trainer_done` signal when a trainer reports completion."""

    attempt: int
    status: str  # "succeeded" | "failed" | "cancelled"
    reason: str | None = None


@dataclass(frozen=True)
class Preempt:
    """The running job gives way to `by` (a job id): its trainer stops, the job waits QUEUED,
    and a later attempt resumes from its newest checkpoint."""

    by: str
