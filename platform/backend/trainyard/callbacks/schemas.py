"""Bodies of the trainer callbacks, exactly as docs/trainer-contract.md describes them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from trainyard.core.json_values import JsonObject, Number

# Event types the platform writes itself; a trainer (or the worker) may not forge them, since
# clients act on them (a `state` event to a terminal state closes every live stream).
RESERVED_EVENT_TYPES = frozenset(
    {"submitted", "state", "heartbeat", "done", "cancel_requested", "attempt"}
)
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


Metrics = dict[Annotated[str, Field(max_length=256)], Number]


def _not_reserved(value: str) -> str:
    if value in RESERVED_EVENT_TYPES:
        raise ValueError(f"{value!r} is reserved for events the platform writes itself")
    return value


EventType = Annotated[str, Field(pattern=EVENT_TYPE_PATTERN), AfterValidator(_not_reserved)]


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
