"""The trainer's environment contract, read with pydantic-settings (prefix ``TRAINYARD_``).

`load_settings` turns any problem into a `ContractError` whose message is one line that starts
with the variable's name, e.g. ``TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'``; `main`
prints it and exits 2 (see docs/trainer-contract.md).

Hyperparameters (``TRAINYARD_HYPERPARAMETERS``, a JSON object; unknown keys are refused)
-----------------------------------------------------------------------------------------
===========================  ======  ===========  ==============================================
key                          type    default      range / meaning
===========================  ======  ===========  ==============================================
learning_rate                float   5e-5         > 0, ≤ 10
weight_decay                 float   0.0          ≥ 0, ≤ 10
warmup_ratio                 float   0.0          ≥ 0, < 1: share of all optimizer steps spent
                                                  warming the learning rate up linearly
lr_scheduler_type            string  "linear"     linear, cosine, cosine_with_restarts,
                                                  polynomial, constant, constant_with_warmup,
                                                  inverse_sqrt
optim                        string  adamw_torch  adamw_torch, adamw_torch_fused, adafactor,
                                                  sgd, adagrad, rmsprop
max_length                   int     128          1 … 8192: tokens per text (longer texts are
                                                  truncated; text-classification)
seed                         int     0            0 … 2**32 - 1
gradient_accumulation_steps  int     1            1 … 1024
fp16                         bool    false        float16 mixed precision (CUDA); not with bf16
bf16                         bool    false        bfloat16 mixed precision; not with fp16
dataloader_num_workers       int     0            0 … 64
model_config                 object  {}           config overrides, e.g. {"hidden_size": 32,
                                                  "num_hidden_layers": 2}: for a model type
                                                  (random init) they shape the model; for a
                                                  saved model they go to ``from_pretrained``
vocab_size                   int     8000         100 … 1000000: WordPiece vocabulary trained
                                                  for a text model built from a model type
                                                  (capped by what the training texts hold)
label_smoothing_factor       float   0.0          ≥ 0, < 1
===========================  ======  ===========  ==============================================

A bad key or value is a contract error (exit 2), e.g.
``TRAINYARD_HYPERPARAMETERS: must be a JSON object of known hyperparameters (learning_rate:
Input should be greater than 0), got '{"learning_rate": 0}'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import NoDecode
from trainer_kit.settings import (
    COMMON_EXPECTED,
    ContractSettings,
    parse_json_object,
    read_settings,
)

IMAGE_CLASSIFICATION = "image-classification"
TEXT_CLASSIFICATION = "text-classification"
# TRAINYARD_TASK values: the two tasks, and ``classify`` (the platform's name for Ultralytics'
# image classification) as an alias of image-classification.
TASK_ALIASES: Mapping[str, str] = {
    IMAGE_CLASSIFICATION: IMAGE_CLASSIFICATION,
    TEXT_CLASSIFICATION: TEXT_CLASSIFICATION,
    "classify": IMAGE_CLASSIFICATION,
}

# What the framework-specific variables must look like, for the one-line error message.
_EXPECTED: Mapping[str, str] = {
    **COMMON_EXPECTED,
    "model": "a non-empty model type (e.g. vit, bert) or saved model folder",
    "task": "one of image-classification, text-classification (or classify)",
    "hyperparameters": "a JSON object of known hyperparameters",
    "resume_from": (
        "an absolute path, file:///abs/path or s3://bucket/prefix URI of a checkpoint folder"
    ),
}


class Hyperparameters(BaseModel):
    """``TRAINYARD_HYPERPARAMETERS``: see the table in the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    learning_rate: float = Field(default=5e-5, gt=0, le=10)
    weight_decay: float = Field(default=0.0, ge=0, le=10)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
    ] = "linear"
    optim: Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop"] = (
        "adamw_torch"
    )
    max_length: int = Field(default=128, ge=1, le=8192)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    fp16: bool = False
    bf16: bool = False
    dataloader_num_workers: int = Field(default=0, ge=0, le=64)
    model_config_overrides: dict[str, Any] = Field(default_factory=dict, alias="model_config")
    vocab_size: int = Field(default=8000, ge=100, le=1_000_000)
    label_smoothing_factor: float = Field(default=0.0, ge=0, lt=1)

    @field_validator("fp16", "bf16", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    @field_validator(
        "max_length",
        "seed",
        "gradient_accumulation_steps",
        "dataloader_num_workers",
        "vocab_size",
        mode="before",
    )
    @classmethod
    def _strict_int(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        return value

    @model_validator(mode="after")
    def _one_precision(self) -> Hyperparameters:
        if self.fp16 and self.bf16:
            raise ValueError("fp16 and bf16 cannot both be true")
        return self


def describe_hyperparameter_error(exc: ValidationError) -> str:
    """``key: message`` of the first problem, naming the key."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown hyperparameter"
    return f"{loc}: {message}" if loc else message


class TrainerSettings(ContractSettings):
    """Everything the platform tells the trainer, from ``TRAINYARD_*`` environment variables."""

    expected: ClassVar[Mapping[str, str]] = _EXPECTED

    # None: detected from the dataset (train.jsonl/train.csv → text, train/ folder → image).
    task: str | None = None
    imgsz: int = Field(default=224, ge=1)
    batch: int = Field(default=16, ge=1)
    hyperparameters: Annotated[Hyperparameters, NoDecode] = Field(default_factory=Hyperparameters)

    @field_validator("task", mode="before")
    @classmethod
    def _check_task(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or value.strip().lower() not in TASK_ALIASES:
            raise ValueError("unknown task")
        return TASK_ALIASES[value.strip().lower()]

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _parse_hyperparameters(cls, value: Any) -> Any:
        if isinstance(value, Hyperparameters):
            return value
        try:
            return Hyperparameters.model_validate(parse_json_object(value))
        except ValidationError as exc:
            raise ValueError(describe_hyperparameter_error(exc)) from None

    def device_name(self) -> str:
        """``cpu`` for 0 GPUs, else ``cuda`` (one process) or ``cuda:0,1,…`` (DDP)."""
        if self.gpus == 0:
            return "cpu"
        return "cuda:0" if self.gpus == 1 else "cuda:" + ",".join(map(str, range(self.gpus)))


def load_settings(environ: Mapping[str, str] | None = None) -> TrainerSettings:
    """Read and validate the environment; raise `ContractError` naming the first bad variable."""
    return read_settings(TrainerSettings, environ)
