"""Bodies of the backend's internal API (worker -> backend, docs/architecture.md): the backend
validates requests and writes answers with these models, the worker's BackendClient sends and
parses with the same ones."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from trainyard_workflows.event_types import EventType
from trainyard_workflows.job_states import JobState
from trainyard_workflows.json_values import JsonObject


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: JobState
    reason: str | None = Field(default=None, max_length=10_000)


class WorkerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    message: str = Field(default="", max_length=10_000)
    data: JsonObject = Field(default_factory=dict)


class TrackingUpdate(BaseModel):
    """Where the worker tracks the job; fields left out keep their stored value."""

    model_config = ConfigDict(extra="forbid")

    mlflow_run_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    mlflow_experiment_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    model_name: str | None = Field(default=None, min_length=1, max_length=256)
    model_version: str | None = Field(default=None, min_length=1, max_length=32)


class AttemptGrant(BaseModel):
    attempt: int
    callback_token: str
    # The slug of the job's project: the Kubernetes launcher runs the attempt in the namespace
    # TRAINYARD_K8S_PROJECT_NAMESPACES maps it to. None from a backend older than projects.
    project_slug: str | None = None
    # The job's priority level (low, normal, high, urgent): Kueue's WorkloadPriorityClass is
    # `trainyard-<level>`. None from a backend older than priorities.
    priority: str | None = Field(default=None, pattern=r"^[a-z]{1,16}$")


class Liveness(BaseModel):
    state: JobState
    attempt: int
    # The current attempt's newest heartbeat (null until its trainer sent one).
    last_heartbeat_at: datetime | None
    # True once the job is terminal (the trainer's `done` arrived, or it ended otherwise).
    done: bool


class Checkpoint(BaseModel):
    """The newest checkpoint a trainer of the job announced (`checkpoint_saved`)."""

    path: str
    epoch: int | None
    attempt: int | None
    seq: int
    # What the trainer announced the file (or folder) to be: the next attempt refuses it if it
    # is not that any more (trainer_kit.fingerprint).
    size: int
    sha256: str


class LatestCheckpoint(BaseModel):
    # null: no trainer of the job saved one yet (a new attempt then starts from scratch).
    checkpoint: Checkpoint | None


class AdmissionAnswer(BaseModel):
    """The backend's answer when a validated job asks to be admitted (or asks again)."""

    admitted: bool
    # The job's state now: a terminal one means it ended meanwhile (cancelled while queued).
    state: JobState
    # Set when the job can never run on this platform (more GPUs than any node has): the
    # workflow fails the job with it instead of queueing it forever.
    refused: str | None = None
    # While it waits: its place in the queue (1: next) and why it waits, for the timeline.
    position: int = 0
    reason: str = ""


class RequeueRequest(BaseModel):
    """A preempted job goes back to QUEUED: its attempt `attempt` stopped, giving way to `by`."""

    attempt: int = Field(ge=1)
    by: str = Field(max_length=64)


class ExternalQueuePlace(BaseModel):
    """Where a queue outside the platform (Kueue) holds an attempt: body of
    `PUT /internal/v1/jobs/{id}/external-queue`; the job waits in QUEUED with it as its `queue`
    until the worker says the attempt was admitted (DELETE)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempt: int = Field(ge=1)
    # 1-based place in the attempt's LocalQueue; 0 when Kueue does not say (no visibility API).
    position: int = Field(ge=0)
    # GPUs asked by the workloads ahead of it in that queue.
    gpus_ahead: int = Field(ge=0)
    # Kueue's own words (the Workload's QuotaReserved condition), prefixed with the queue.
    reason: str = Field(max_length=2000)
