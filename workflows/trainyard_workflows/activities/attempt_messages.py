"""How the watch and the launch describe an attempt on the job's timeline."""

from __future__ import annotations

from trainyard_workflows.activities.schemas import LaunchTrainerInput
from trainyard_workflows.internal_api import Checkpoint
from trainyard_workflows.launchers.base import AttemptHandle


def retry_message(request: LaunchTrainerInput, checkpoint: Checkpoint | None) -> str:
    previous = request.attempt - 1
    if request.interrupted:
        ended = f"attempt {previous} was interrupted ({request.retry_reason})"
    else:
        ended = f"attempt {previous} ended without a result ({request.retry_reason})"
    if checkpoint is None:
        resume = "no checkpoint was saved, so it starts from scratch"
    elif checkpoint.epoch is not None:
        resume = f"it resumes after epoch {checkpoint.epoch}"
    else:
        resume = "it resumes from the newest checkpoint"
    if request.interrupted:
        used = f"attempt {request.attempt}, an interruption is not counted as a failure"
    else:
        budget = request.training.max_attempts
        used = f"attempt {request.attempt} (a job may have {budget} failed attempts)"
    return f"{ended}: starting {used}; {resume}"[:2000]


def where_it_runs(handle: AttemptHandle) -> str:
    return (
        f"Kubernetes Job {handle.namespace}/{handle.name}" if handle.name else f"pid {handle.pid}"
    )
