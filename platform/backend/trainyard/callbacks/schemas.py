"""Bodies of the trainer callbacks, exactly as docs/trainer-contract.md describes them."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from trainyard_workflows.event_types import EventType
from trainyard_workflows.json_values import JsonObject, Number
from trainyard_workflows.system_metrics import SystemMetrics

# Bounds on what a trainer may send (it runs user code: its callbacks are untrusted input).
MAX_METRICS = 256
MAX_ARTIFACTS = 32
MAX_EVENT_DATA_BYTES = 64 * 1024

Metrics = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=256)], Number],
    Field(max_length=MAX_METRICS),
]


def _at_most_event_data_bytes(data: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(data, separators=(",", ":")).encode())
    if size > MAX_EVENT_DATA_BYTES:
        raise ValueError(
            f"event data is {size} bytes of JSON, more than the {MAX_EVENT_DATA_BYTES} allowed"
        )
    return data


EventData = Annotated[JsonObject, AfterValidator(_at_most_event_data_bytes)]


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: `true` is not an epoch count (pydantic would read it as 1).
    epoch: int = Field(
        strict=True, ge=0, le=10_000_000, description="completed epochs (0 before the first)"
    )
    epochs: int = Field(strict=True, ge=1, le=10_000_000)
    metrics: Metrics = Field(default_factory=dict)
    elapsed_s: Number = Field(default=None, ge=0)
    eta_s: Number = Field(default=None, ge=0)
    system: SystemMetrics | None = None


class TrainerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    message: str = Field(default="", max_length=10_000)
    data: EventData = Field(default_factory=dict)


class Done(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed", "cancelled"]
    reason: str | None = Field(default=None, max_length=10_000)
    metrics: Metrics = Field(default_factory=dict)
    artifacts: dict[
        Annotated[str, Field(min_length=1, max_length=256)],
        Annotated[str, Field(min_length=1, max_length=4096)],
    ] = Field(default_factory=dict, max_length=MAX_ARTIFACTS)
