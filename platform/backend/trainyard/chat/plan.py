"""The types both planners (grammar parser and LLM) share.

A planner only *reads* the user's words into a `PlanDraft`: what was asked for, and questions
about what was unclear. `trainyard.chat.completion` then turns a draft into a `TrainingPlan`
the same way for both planners: defaults become visible assumptions, the dataset is looked up
(status, class count), limits are checked, a duration is estimated. Nothing runs until the
user starts the plan, which submits `TrainingPlan.job_create()` like `POST /v1/jobs`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from trainyard.admission.priorities import PriorityName
from trainyard.frameworks.job_base import JobCreateBase
from trainyard.frameworks.job_create import parse_job_create

PlannerName = Literal["grammar", "llm"]

# A number on the card: any signed 64-bit integer, never a bool or a float. What a job accepts
# (epochs >= 1, ...) is checked as questions, so an edited card with epochs=-1 gets one.
PLAN_NUMBER_MAX = 2**63 - 1
PlanNumber = Annotated[int, Field(strict=True, ge=-PLAN_NUMBER_MAX - 1, le=PLAN_NUMBER_MAX)]


class PlanRequest(BaseModel):
    """The job request's fields, each possibly still unknown (None)."""

    model_config = ConfigDict(extra="forbid")

    framework: str | None = None
    model: str | None = None
    dataset: str | None = None
    task: str | None = None
    epochs: PlanNumber | None = None
    imgsz: PlanNumber | None = None
    batch: PlanNumber | None = None
    gpus: PlanNumber | None = None
    # None: the job's default (normal); a level above the user's cap is a question (completion).
    priority: PriorityName | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class Question(BaseModel):
    """Something the planner will not guess: the user must answer or edit the card."""

    field: str | None = Field(default=None, description="the PlanRequest field it is about")
    question: str
    choices: list[str] = Field(default_factory=list)


class PlanDraft(BaseModel):
    """What a planner read from the conversation (before defaults and checks)."""

    model_config = ConfigDict(extra="forbid")

    request: PlanRequest = Field(default_factory=PlanRequest)
    questions: list[Question] = Field(default_factory=list)
    # The job id a "like my last run but ..." request started from, if any.
    based_on_job: str | None = None
    # Free text for the user (e.g. "Changed epochs to 50."); never executed.
    note: str | None = None


class Assumption(BaseModel):
    field: str
    value: Any
    reason: str


class DatasetSummary(BaseModel):
    name: str
    status: str  # pending | valid | invalid
    format: str
    classes: int | None = None
    class_names: list[str] = Field(default_factory=list)
    images: int | None = None
    warnings: int = 0
    errors: int = 0


class DurationEstimate(BaseModel):
    seconds: float = Field(ge=0)
    basis: str = Field(description="how it was estimated, e.g. 'from 3 past runs of yolo11n'")


class TrainingPlan(BaseModel):
    """A plan the user confirms: a full request once `ready`, else questions to answer."""

    request: PlanRequest
    assumed: list[Assumption] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)
    dataset: DatasetSummary | None = None
    estimate: DurationEstimate | None = None
    based_on_job: str | None = None
    ready: bool = False

    def job_create(self) -> JobCreateBase:
        """The job to submit (raises pydantic.ValidationError if a field is still invalid)."""
        return parse_job_create(self.request.model_dump(exclude_none=True))


class ChatTurn(BaseModel):
    """One message of a conversation, as planners read it."""

    role: Literal["user", "assistant"]
    content: str


class JobSummary(BaseModel):
    """A past job as planners see it ("like my last run")."""

    id: str
    framework: str
    model: str
    dataset: str
    epochs: int
    imgsz: int
    batch: int
    gpus: int
    state: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class PlannerContext(Protocol):
    """What a planner may look up about the user's world (read-only, owner-scoped)."""

    async def datasets(self) -> list[DatasetSummary]: ...

    async def models(self) -> dict[str, list[str]]:
        """Example model names per framework."""
        ...

    async def recent_jobs(self, limit: int = 5) -> list[JobSummary]:
        """The owner's jobs, newest first."""
        ...

    async def problems(self, draft: PlanDraft) -> list[str]:
        """Why `draft` cannot run as asked (unknown model, too many GPUs, no such dataset...);
        empty when it can. The LLM planner feeds these back to the model."""
        ...
