"""Response bodies of the jobs API (requests: `frameworks.job_create`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from trainyard.admission.priorities import PriorityLevel
from trainyard.core.settings import BackendSettings
from trainyard.observability.trace_links import trace_url
from trainyard_workflows.job_states import JobState
from trainyard_workflows.system_metrics import SystemMetrics


class Progress(BaseModel):
    epoch: int = 0
    epochs: int
    metrics: dict[str, float | None] = Field(default_factory=dict)
    elapsed_s: float | None = None
    eta_s: float | None = None
    # The newest heartbeat's system metrics (CPU, RAM, GPUs, throughput); None before any.
    system: SystemMetrics | None = None


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


class QueueStatus(BaseModel):
    """Why a QUEUED job waits, as the admission ledger sees the queue now (nothing stored)."""

    position: int  # 1-based place among the waiting jobs (0: it fits, the next pass starts it)
    gpus_ahead: int  # GPUs asked by the jobs ahead of it that wait for capacity
    hold: str  # what holds it (the ledger's HoldKind: capacity, quota_gpus, ...; "" when none)
    reason: str  # one sentence for people
    # When enough of what holds it should be free, from the running jobs' ETAs; None: unknown.
    estimated_start: datetime | None = None


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    owner: str  # the user who submitted / registered it
    framework: str
    model: str
    dataset: str
    dataset_uri: str
    task: str
    epochs: int
    imgsz: int
    batch: int
    gpus: int
    priority: PriorityLevel = "normal"  # its level's name (stored as a number)
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
    # The job's OpenTelemetry trace id (32 hex digits), from its submit request; None for jobs
    # submitted before tracing.
    trace_id: str | None = None
    # Where that trace opens in MLflow's UI (observability/trace_links.py); filled in when the
    # read is validated with the API's settings as its context, None otherwise.
    trace_url: str | None = None
    # Its place in the queue and why it waits, while QUEUED (admission.queue_status); else None.
    queue: QueueStatus | None = None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="after")
    def _link_trace(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, BackendSettings):
            self.trace_url = trace_url(info.context, self.trace_id)
        return self


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
