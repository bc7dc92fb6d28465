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

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from trainer.resume import ResumeSource
from trainer.storage import S3Location

ENV_PREFIX = "TRAINYARD_"

IMAGE_CLASSIFICATION = "image-classification"
TEXT_CLASSIFICATION = "text-classification"
# TRAINYARD_TASK values: the two tasks, and ``classify`` (the platform's name for Ultralytics'
# image classification) as an alias of image-classification.
TASK_ALIASES: Mapping[str, str] = {
    IMAGE_CLASSIFICATION: IMAGE_CLASSIFICATION,
    TEXT_CLASSIFICATION: TEXT_CLASSIFICATION,
    "classify": IMAGE_CLASSIFICATION,
}

# What each variable must look like, for the one-line error message.
_EXPECTED: Mapping[str, str] = {
    "job_id": "a non-empty string",
    "attempt": "an integer ≥ 1",
    "callback_url": "an http(s) URL such as http://127.0.0.1:8000",
    "callback_token": "a non-empty string",
    "model": "a non-empty model type (e.g. vit, bert) or saved model folder",
    "dataset_uri": "a non-empty URI such as file:///abs/path",
    "output_dir": "a folder path",
    "task": "one of image-classification, text-classification (or classify)",
    "epochs": "an integer ≥ 1",
    "imgsz": "an integer ≥ 1",
    "batch": "an integer ≥ 1",
    "gpus": "an integer ≥ 0",
    "hyperparameters": "a JSON object of known hyperparameters",
    "keepalive_s": "a number > 0",
    "output_uri": "an s3://bucket[/prefix] URI",
    "resume_from": (
        "an absolute path, file:///abs/path or s3://bucket/prefix URI of a checkpoint folder"
    ),
}


class ContractError(Exception):
    """A missing or malformed environment variable; ``str(err)`` is the one-line message."""


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


class TrainerSettings(BaseSettings):
    """Everything the platform tells the trainer, from ``TRAINYARD_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    job_id: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    callback_url: str
    callback_token: SecretStr
    model: str = Field(min_length=1)
    dataset_uri: str = Field(min_length=1)
    output_dir: Path
    # None: detected from the dataset (train.jsonl/train.csv → text, train/ folder → image).
    task: str | None = None
    epochs: int = Field(ge=1)
    imgsz: int = Field(default=224, ge=1)
    batch: int = Field(default=16, ge=1)
    gpus: int = Field(default=0, ge=0)
    hyperparameters: Annotated[Hyperparameters, NoDecode] = Field(default_factory=Hyperparameters)
    keepalive_s: float = Field(default=15.0, gt=0)
    # Object storage the run is published to (checkpoints, weights, result files); unset:
    # artifacts stay in output_dir and are reported as local paths.
    output_uri: str | None = None
    # A checkpoint folder an earlier attempt of this job saved (the `data.path` of its newest
    # checkpoint_saved event): continue training from it (trainer/resume.py).
    resume_from: str | None = None

    @field_validator("job_id", "model", "dataset_uri", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("task", mode="before")
    @classmethod
    def _check_task(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or value.strip().lower() not in TASK_ALIASES:
            raise ValueError("unknown task")
        return TASK_ALIASES[value.strip().lower()]

    @field_validator("callback_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("not an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("callback_token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("empty")
        return value

    @field_validator("output_dir")
    @classmethod
    def _check_output_dir(cls, value: Path) -> Path:
        if not str(value).strip():
            raise ValueError("empty")
        return value.expanduser().resolve()

    @field_validator("output_uri", mode="before")
    @classmethod
    def _check_output_uri(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("not a string")
        S3Location.parse(value.strip())  # raises ValueError naming the problem
        return value.strip().rstrip("/")

    @field_validator("resume_from", mode="before")
    @classmethod
    def _check_resume_from(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("not a string")
        ResumeSource.parse(value.strip())  # raises ValueError naming the problem
        return value.strip()

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _parse_hyperparameters(cls, value: Any) -> Any:
        if isinstance(value, Hyperparameters):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        try:
            return Hyperparameters.model_validate(value)
        except ValidationError as exc:
            raise ValueError(describe_hyperparameter_error(exc)) from None

    def resume_source(self) -> ResumeSource | None:
        """Where the checkpoint to resume from is, if this attempt resumes."""
        return None if self.resume_from is None else ResumeSource.parse(self.resume_from)

    def device_name(self) -> str:
        """``cpu`` for 0 GPUs, else ``cuda`` (one process) or ``cuda:0,1,…`` (DDP)."""
        if self.gpus == 0:
            return "cpu"
        return "cuda:0" if self.gpus == 1 else "cuda:" + ",".join(map(str, range(self.gpus)))


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _describe(error: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    name = _env_name(field)
    raw = _lookup(environ, name)
    if raw is None:
        return f"{name}: required but not set"
    expected = _EXPECTED.get(field, "valid")
    shown = "<redacted>" if field == "callback_token" else repr(_shorten(raw))
    detail = ""
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ValueError) and field == "hyperparameters":
        detail = f" ({ctx_error})"
    return f"{name}: must be {expected}{detail}, got {shown}"


def _shorten(raw: str, limit: int = 80) -> str:
    return raw if len(raw) <= limit else raw[: limit - 3] + "..."


def _lookup(environ: Mapping[str, str], name: str) -> str | None:
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def load_settings(environ: Mapping[str, str] | None = None) -> TrainerSettings:
    """Read and validate the environment; raise `ContractError` naming the first bad variable."""
    env = os.environ if environ is None else environ
    try:
        if environ is None:
            return TrainerSettings()
        # An explicit mapping (tests) replaces the process environment entirely.
        values = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in env.items()
            if key.upper().startswith(ENV_PREFIX)
            and key[len(ENV_PREFIX) :].lower() in TrainerSettings.model_fields
        }
        return TrainerSettings.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors()
        order = list(TrainerSettings.model_fields)
        errors.sort(key=lambda e: order.index(str(e["loc"][0])) if e.get("loc") else len(order))
        raise ContractError(_describe(errors[0], env)) from None
    except SettingsError as exc:  # pragma: no cover - decoding is disabled for the complex field
        raise ContractError(f"{ENV_PREFIX}*: {exc}") from None
