"""The trainer's environment contract, read with pydantic-settings (prefix ``TRAINYARD_``).

`load_settings` turns any problem into a `ContractError` whose message is one line that starts
with the variable's name, e.g. ``TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'``; `main`
prints it and exits 2 (see docs/trainer-contract.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from trainer_kit.settings import (
    COMMON_EXPECTED,
    ContractSettings,
    parse_json_object,
    read_settings,
)

# Ultralytics train() arguments the platform sets from its own variables (or that the trainer
# must control to stay offline and inside its output folder). A hyperparameter may not set them.
RESERVED_HYPERPARAMETERS: Mapping[str, str] = {
    "model": "TRAINYARD_MODEL",
    "data": "TRAINYARD_DATASET_URI",
    "task": "TRAINYARD_TASK",
    "epochs": "TRAINYARD_EPOCHS",
    "imgsz": "TRAINYARD_IMGSZ",
    "batch": "TRAINYARD_BATCH",
    "device": "TRAINYARD_GPUS",
    "project": "TRAINYARD_OUTPUT_DIR",
    "name": "TRAINYARD_OUTPUT_DIR",
    "save_dir": "TRAINYARD_OUTPUT_DIR",
    "exist_ok": "the trainer",
    "mode": "the trainer",
    "resume": "the trainer (the platform decides resumes: TRAINYARD_RESUME_FROM)",
    "save": "the trainer (a checkpoint after every epoch is what a retried attempt resumes from)",
    "plots": "the trainer (plots need fonts that would be downloaded)",
}

# What the framework-specific variables must look like, for the one-line error message.
_EXPECTED: Mapping[str, str] = {
    **COMMON_EXPECTED,
    "model": "a non-empty model name, config or weights path",
    "task": "a non-empty task name such as detect",
    "hyperparameters": "a JSON object",
}


class TrainerSettings(ContractSettings):
    """Everything the platform tells the trainer, from ``TRAINYARD_*`` environment variables."""

    expected: ClassVar[Mapping[str, str]] = _EXPECTED

    task: str = Field(default="detect", min_length=1)
    imgsz: int = Field(default=640, ge=1)
    batch: int = Field(default=16, ge=1)
    hyperparameters: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _parse_hyperparameters(cls, value: Any) -> Any:
        value = parse_json_object(value)
        for key in value:
            if key in RESERVED_HYPERPARAMETERS:
                raise ValueError(f"key {key!r} is set by {RESERVED_HYPERPARAMETERS[key]}")
        return value

    def ultralytics_device(self) -> str:
        """Ultralytics' ``device`` argument: ``cpu`` for 0 GPUs, else ``0`` or ``0,1,…``."""
        return "cpu" if self.gpus == 0 else ",".join(str(i) for i in range(self.gpus))


def load_settings(environ: Mapping[str, str] | None = None) -> TrainerSettings:
    """Read and validate the environment; raise `ContractError` naming the first bad variable."""
    return read_settings(TrainerSettings, environ)
