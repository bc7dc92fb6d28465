"""Request and response bodies of a project's quota (`/v1/projects/{slug}/quota`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainyard.admission.priorities import DEFAULT_MAX_PRIORITY, PriorityName
from trainyard.frameworks.job_base import MAX_GPUS
from trainyard.jobs.models import MAX_INT_COLUMN

# A month has at most 744 hours: a budget above every GPU running all month is no budget.
MAX_GPU_HOURS = float(MAX_GPUS * 744)


class QuotaSet(BaseModel):
    """A project's limits (platform admins); null: no limit but the platform's capacity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpus: int | None = Field(default=None, ge=0, le=MAX_GPUS)
    runs: int | None = Field(default=None, ge=0, le=MAX_INT_COLUMN)
    gpu_hours_per_month: float | None = Field(default=None, ge=0, le=MAX_GPU_HOURS)
    max_priority: PriorityName = Field(
        default=DEFAULT_MAX_PRIORITY,
        description="the highest priority a member may ask for (its admins: urgent)",
    )


class QuotaUsage(BaseModel):
    gpus: int = Field(description="GPUs its admitted, unfinished jobs hold now")
    runs: int = Field(description="its admitted, unfinished jobs")
    gpu_hours_this_month: float = Field(description="GPU-hours RUNNING this calendar month (UTC)")


class QuotaRemaining(BaseModel):
    """What is left under each limit (null: that limit is not set)."""

    gpus: int | None
    runs: int | None
    gpu_hours_this_month: float | None


class QuotaRead(BaseModel):
    project: str = Field(description="the project's slug")
    quota: QuotaSet
    usage: QuotaUsage
    remaining: QuotaRemaining
    # GPU jobs wait (or are refused, per TRAINYARD_BUDGET_EXCEEDED) until the month turns.
    budget_exhausted: bool
