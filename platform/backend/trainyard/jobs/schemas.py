"""Request and response bodies of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainyard.frameworks.ultralytics import UltralyticsHyperparameters, check_model
from trainyard.jobs.states import JobState

# Absolute ceilings; the deployment's own (lower) limits come from settings and are checked
# by the service, which names the field in the same 422 shape.
_MAX_EPOCHS = 1_000_000
_MAX_GPUS = 1024
_MAX_BATCH = 1_000_000


class JobCreate(BaseModel):
    """A training job to submit. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    framework: Literal["ultralytics"] = "ultralytics"
    model: str = Field(min_length=1, max_length=256, examples=["yolo11n.yaml"])
    dataset: str = Field(
        min_length=1,
        max_length=1024,
        description=(
            "a registered dataset name, a file:// URI of a dataset folder, or an s3:// prefix "
            "inside the configured storage bucket"
        ),
        examples=["shapes", "file:///data/shapes", "s3://trainyard/datasets/shapes"],
    )
    task: Literal["detect"] = "detect"
    epochs: int = Field(default=10, ge=1, le=_MAX_EPOCHS)
    imgsz: int = Field(default=640, ge=32, le=4096, multiple_of=32)
    batch: int = Field(default=16, ge=1, le=_MAX_BATCH)
    gpus: int = Field(default=0, ge=0, le=_MAX_GPUS)
    hyperparameters: UltralyticsHyperparameters = Field(default_factory=UltralyticsHyperparameters)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return check_model(value)

    def hyperparameters_dict(self) -> dict[str, Any]:
        """Only what the client set: the trainer keeps the framework's defaults for the rest."""
        return self.hyperparameters.model_dump(exclude_none=True)


class Progress(BaseModel):
    epoch: int = 0
    epochs: int
    metrics: dict[str, float | None] = Field(default_factory=dict)
    elapsed_s: float | None = None
    eta_s: float | None = None


class Result(BaseModel):
    metrics: dict[str, float | None] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)


class Tracking(BaseModel):
    """Where the job is tracked: its MLflow run and, once it succeeded, its model version."""

    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_run_url: str | None = None
    model_name: str | None = None
    model_version: str | None = None


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    owner: str
    framework: str
    model: str
    dataset: str
    dataset_uri: str
    task: str
    epochs: int
    imgsz: int
    batch: int
    gpus: int
    hyperparameters: dict[str, Any]
    state: JobState
    reason: str | None
    attempt: int
    last_seq: int
    last_heartbeat_at: datetime | None
    progress: Progress | None
    result: Result | None
    cancel_requested: bool
    tracking: Tracking | None = None
    created_at: datetime
    updated_at: datetime


class JobPage(BaseModel):
    items: list[JobRead]
    total: int
    limit: int
    offset: int


class EventRead(BaseModel):
    """One entry of a job's timeline; the same object is sent as a WebSocket frame."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    job_id: str
    type: str
    source: str
    message: str
    data: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventRead]
    # The job's newest seq: a client that got fewer items than this asks again after the last.
    last_seq: int
