"""Request and response bodies of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from trainyard.frameworks import huggingface, timm, ultralytics
from trainyard.frameworks.huggingface import HuggingfaceHyperparameters
from trainyard.frameworks.timm import TimmHyperparameters
from trainyard.frameworks.ultralytics import UltralyticsHyperparameters
from trainyard.jobs.states import JobState

# Absolute ceilings; the deployment's own (lower) limits come from settings and are checked
# by the service, which names the field in the same 422 shape.
_MAX_EPOCHS = 1_000_000
_MAX_GPUS = 1024
_MAX_BATCH = 1_000_000


class _JobCreateBase(BaseModel):
    """The fields every framework's job has. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    epochs: int = Field(default=10, ge=1, le=_MAX_EPOCHS)
    batch: int = Field(default=16, ge=1, le=_MAX_BATCH)
    gpus: int = Field(default=0, ge=0, le=_MAX_GPUS)

    def field_problems(self) -> dict[str, str]:
        """Problems of one field that depend on another (field -> message); none by default."""
        return {}

    def hyperparameters_dict(self) -> dict[str, Any]:
        """Only what the client set: the trainer keeps the framework's defaults for the rest."""
        hyperparameters: BaseModel = getattr(self, "hyperparameters")  # noqa: B009
        return hyperparameters.model_dump(exclude_none=True, by_alias=True)


class UltralyticsJobCreate(_JobCreateBase):
    """A YOLO detection job (trainers/ultralytics)."""

    framework: Literal["ultralytics"] = "ultralytics"
    task: Literal["detect"] = "detect"
    imgsz: int = Field(default=640, ge=32, le=4096, multiple_of=32)
    hyperparameters: UltralyticsHyperparameters = Field(default_factory=UltralyticsHyperparameters)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return ultralytics.check_model(value)


class TimmJobCreate(_JobCreateBase):
    """An image-classification job on an ImageFolder dataset (trainers/timm)."""

    framework: Literal["timm"]
    task: Literal["classify"] = "classify"
    imgsz: int = Field(default=224, ge=16, le=4096)
    batch: int = Field(default=32, ge=1, le=_MAX_BATCH)
    hyperparameters: TimmHyperparameters = Field(default_factory=TimmHyperparameters)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return timm.check_model(value)


class HuggingfaceJobCreate(_JobCreateBase):
    """An image- or text-classification job with transformers' Trainer (trainers/huggingface)."""

    framework: Literal["huggingface"]
    task: Literal["image-classification", "text-classification"] = "image-classification"
    imgsz: int = Field(default=224, ge=16, le=4096)
    hyperparameters: HuggingfaceHyperparameters = Field(default_factory=HuggingfaceHyperparameters)

    def field_problems(self) -> dict[str, str]:
        # Checked once every field is valid: which models fit depends on the task.
        try:
            huggingface.check_model(self.model, self.task)
        except ValueError as error:
            return {"model": str(error)}
        return {}


JobCreate = UltralyticsJobCreate | TimmJobCreate | HuggingfaceJobCreate
JOB_CREATE_BY_FRAMEWORK: dict[str, type[JobCreate]] = {
    "ultralytics": UltralyticsJobCreate,
    "timm": TimmJobCreate,
    "huggingface": HuggingfaceJobCreate,
}
Framework = Literal["ultralytics", "timm", "huggingface"]


class _FrameworkOnly(BaseModel):
    framework: Framework = "ultralytics"


def parse_job_create(data: Any) -> JobCreate:
    """The framework's job model for `data` (`framework` defaults to ultralytics); raises
    pydantic.ValidationError with the same field paths as a plain model would (no union tag)."""
    framework = data.get("framework", "ultralytics") if isinstance(data, dict) else None
    model = JOB_CREATE_BY_FRAMEWORK.get(framework) if isinstance(framework, str) else None
    if model is None:
        # Raises the error naming `framework` (or the body, when it is not an object).
        _FrameworkOnly.model_validate(data)
        raise AssertionError("unreachable: a known framework has a job model")
    job = model.model_validate(data)
    problems = job.field_problems()
    if problems:
        raise ValidationError.from_exception_data(
            model.__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "value_error", "Value error, {reason}", {"reason": why}
                    ),
                    loc=(field,),
                    input=getattr(job, field),
                )
                for field, why in problems.items()
            ],
        )
    return job


def job_defaults(framework: str) -> dict[str, Any]:
    """The defaults of a framework's job (task, epochs, imgsz, batch, gpus)."""
    model = JOB_CREATE_BY_FRAMEWORK[framework]
    return {
        name: model.model_fields[name].default
        for name in ("task", "epochs", "imgsz", "batch", "gpus")
    }


def job_tasks(framework: str) -> list[str]:
    """The tasks a framework's job may name, its default first."""
    field = JOB_CREATE_BY_FRAMEWORK[framework].model_fields["task"]
    return sorted(get_args(field.annotation), key=lambda task: task != field.default)


def job_create_schemas() -> dict[str, dict[str, Any]]:
    """Each framework's request body as JSON Schema (for `GET /v1/frameworks`)."""
    return {name: model.model_json_schema() for name, model in JOB_CREATE_BY_FRAMEWORK.items()}


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
