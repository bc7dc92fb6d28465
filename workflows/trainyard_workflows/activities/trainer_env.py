"""The trainer-contract environment of one attempt (docs/trainer-contract.md).

With S3 storage the trainer also gets `TRAINYARD_OUTPUT_URI` (where it publishes checkpoints,
weights and result files: `<storage root>/jobs/<job>/attempt-<n>`) and the standard boto3
variables `AWS_*` built from `TRAINYARD_S3_*`. With file storage it gets neither: artifacts
stay in its output dir. The returned mapping holds secrets (callback token, S3 secret key):
it goes to the launcher, never to a log or to workflow history.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainyard_workflows.attempt_outputs import AttemptOutput
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.internal_api import Checkpoint
from trainyard_workflows.storage import StorageSettings, parse_storage_uri
from trainyard_workflows.telemetry.logs import LogFormat


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def trainer_env(
    training: TrainingInput,
    *,
    attempt: int,
    callback_url: str,
    callback_token: str,
    output_dir: Path,
    keepalive_s: float,
    storage: StorageSettings | None = None,
    resume_from: Checkpoint | None = None,
    log_format: LogFormat = "console",
) -> dict[str, str]:
    """Every variable of the contract, and nothing else."""
    env = {
        "TRAINYARD_JOB_ID": training.job_id,
        "TRAINYARD_ATTEMPT": str(attempt),
        "TRAINYARD_CALLBACK_URL": callback_url,
        "TRAINYARD_CALLBACK_TOKEN": callback_token,
        "TRAINYARD_MODEL": training.model,
        "TRAINYARD_DATASET_URI": training.dataset_uri,
        "TRAINYARD_OUTPUT_DIR": str(output_dir),
        "TRAINYARD_TASK": training.task,
        "TRAINYARD_EPOCHS": str(training.epochs),
        "TRAINYARD_IMGSZ": str(training.imgsz),
        "TRAINYARD_BATCH": str(training.batch),
        "TRAINYARD_GPUS": str(training.gpus),
        "TRAINYARD_HYPERPARAMETERS": json.dumps(training.hyperparameters),
        "TRAINYARD_KEEPALIVE_S": _seconds(keepalive_s),
        "TRAINYARD_LOG_FORMAT": log_format,  # the worker's own
    }
    if resume_from is not None:
        # A checkpoint an earlier attempt of this job saved: continue after its epoch, if it
        # is still the file (or folder) its trainer announced.
        env["TRAINYARD_RESUME_FROM"] = resume_from.path
        env["TRAINYARD_RESUME_SIZE"] = str(resume_from.size)
        env["TRAINYARD_RESUME_SHA256"] = resume_from.sha256
    if storage is not None and storage.is_s3:
        env["TRAINYARD_OUTPUT_URI"] = output_uri(storage, training.job_id, attempt)
        env.update(storage.trainer_env())
    return env


def attempt_output(
    output_dir: Path, storage: StorageSettings, job_id: str, attempt: int
) -> AttemptOutput:
    """Where the attempt's trainer writes, as the backend records it (and holds its reports to)."""
    uri = output_uri(storage, job_id, attempt) if storage.is_s3 else None
    return AttemptOutput(output_dir=str(output_dir), output_uri=uri)


def output_uri(storage: StorageSettings, job_id: str, attempt: int) -> str:
    """Where an attempt's files go in storage: `<storage root>/jobs/<job>/attempt-<n>`."""
    return parse_storage_uri(storage.storage_url).child(f"jobs/{job_id}/attempt-{attempt}").uri
