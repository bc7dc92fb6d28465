"""A trainer's system metrics, as its heartbeats carry them (docs/trainer-contract.md): the
``system`` object the backend validates, stores on the heartbeat event and as the job's latest
``progress["system"]``, and the MLflow sync records. Defined here, the layer the backend and
the worker both import, so the shape is written once."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Bounds far above any real host: a number outside them is a trainer bug, refused (422) like
# any other malformed body.
MAX_GPUS = 16
_MAX_BYTES = 2**53  # exact in a JSON number (and a JavaScript one)
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Bytes = Annotated[int, Field(strict=True, ge=0, le=_MAX_BYTES)]


class GpuMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(strict=True, ge=0, lt=1024, description="as CUDA numbers it: cuda:<index>")
    utilization_ratio: Ratio = Field(description="share of time a kernel was running")
    memory_used_bytes: Bytes
    memory_total_bytes: Bytes


class SystemMetrics(BaseModel):
    """The trainer's process tree and its GPUs when the heartbeat was sent."""

    model_config = ConfigDict(extra="forbid")

    cpu_percent: float = Field(
        ge=0, le=1_000_000, allow_inf_nan=False, description="the process tree; 100 = one core"
    )
    ram_bytes: Bytes = Field(description="the process tree's memory (proportional set size)")
    samples_per_s: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    data_wait_ratio: Ratio | None = Field(
        default=None, description="share of step time spent waiting for the data loader"
    )
    gpus: list[GpuMetrics] = Field(default_factory=list, max_length=MAX_GPUS)
