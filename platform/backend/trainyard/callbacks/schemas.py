"""Bodies of the trainer callbacks, exactly as docs/trainer-contract.md describes them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainyard_workflows.event_types import EventType
from trainyard_workflows.json_values import JsonObject, Number

Metrics = dict[Annotated[str, Field(max_length=256)], Number]


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


class TrainerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    message: str = Field(default="", max_length=10_000)
    data: JsonObject = Field(default_factory=dict)


class Done(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed", "cancelled"]
    reason: str | None = Field(default=None, max_length=10_000)
    metrics: Metrics = Field(default_factory=dict)
    artifacts: dict[
        Annotated[str, Field(max_length=256)], Annotated[str, Field(max_length=4096)]
    ] = Field(default_factory=dict)
