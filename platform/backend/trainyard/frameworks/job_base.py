"""The fields every framework's job request has; each framework module subclasses it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainyard.admission.priorities import DEFAULT_PRIORITY, PriorityName

# Absolute ceilings; the deployment's own (lower) limits come from settings and are checked
# by the jobs service, which names the field in the same 422 shape.
MAX_EPOCHS = 1_000_000
MAX_GPUS = 1024
MAX_BATCH = 1_000_000


class JobCreateBase(BaseModel):
    """A job request. Unknown fields are refused; a subclass narrows `framework` to its own name
    (the one place that name is written), `task`, `imgsz` and `hyperparameters`."""

    # strict: `"gpus": false` or `"epochs": 3.0` is refused, not read as 0 and 3.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    framework: str
    task: str
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
    epochs: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    imgsz: int
    batch: int = Field(default=16, ge=1, le=MAX_BATCH)
    gpus: int = Field(default=0, ge=0, le=MAX_GPUS)
    priority: PriorityName = Field(
        default=DEFAULT_PRIORITY,
        description=(
            "its place in the queue: members may ask up to the project's max_priority "
            "(default high), its admins up to urgent"
        ),
    )
    hyperparameters: BaseModel

    def field_problems(self) -> dict[str, str]:
        """Problems of one field that depend on another (field -> message); none by default."""
        return {}

    def hyperparameters_dict(self) -> dict[str, Any]:
        """Only what the client set: the trainer keeps the framework's defaults for the rest."""
        return self.hyperparameters.model_dump(exclude_none=True, by_alias=True)
