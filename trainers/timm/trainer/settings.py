"""The trainer's environment contract, read with pydantic-settings (prefix ``TRAINYARD_``).

`load_settings` turns any problem into a `ContractError` whose message is one line that starts
with the variable's name, e.g. ``TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'``; `main`
prints it and exits 2 (see docs/trainer-contract.md).

Hyperparameters (``TRAINYARD_HYPERPARAMETERS``, a JSON object; every key optional)
-------------------------------------------------------------------------------------
An unknown key or a bad value is a contract error naming the key (exit 2):
``TRAINYARD_HYPERPARAMETERS: must be a JSON object of timm hyperparameters (key 'lr': Input
should be greater than 0), got '{"lr": 0}'``.

=================  =================================  ===========  ==============================
key                type and range                     default      meaning
=================  =================================  ===========  ==============================
optimizer          sgd, momentum, nesterov, adam,     adamw        timm.optim.create_optimizer_v2
                   adamw, nadam, nadamw, radam,
                   adamp, sgdp, rmsprop, rmsproptf,
                   adabelief, adafactor, adan, lamb,
                   lars, lion, laprop, madgrad,
                   novograd
lr                 float > 0                          0.001        base learning rate
weight_decay       float >= 0                         0.05         not on biases and norms
momentum           float in [0, 1)                    0.9          sgd/momentum/rmsprop/...
scheduler          cosine, step, tanh, poly, none     cosine       per-epoch LR schedule
                                                                   (timm.scheduler)
warmup_epochs      int >= 0                           0            linear warm-up epochs
warmup_lr          float >= 0                         1e-05        LR the warm-up starts at
min_lr             float >= 0                         0.0          floor of the schedule
decay_epochs       int >= 1 or null                   null         step: epochs per decay
                                                                   (null: max(1, epochs // 3))
decay_rate         float in (0, 1]                    0.1          step: LR factor per decay
label_smoothing    float in [0, 1)                    0.1          of the training loss
hflip              float in [0, 1]                    0.5          horizontal flip probability
vflip              float in [0, 1]                    0.0          vertical flip probability
scale_min          float in (0, 1]                    0.08         RandomResizedCrop: smallest
                                                                   area fraction
color_jitter       float >= 0                         0.0          brightness/contrast/saturation
auto_augment       string or null                     null         timm policy, e.g.
                                                                   "rand-m9-mstd0.5",
                                                                   "augmix-m5-w4", "original"
mixup              float >= 0                         0.0          mixup alpha (0: off)
cutmix             float >= 0                         0.0          cutmix alpha (0: off)
drop_rate          float in [0, 1)                    0.0          dropout before the head
drop_path_rate     float in [0, 1)                    0.0          stochastic depth
clip_grad          float > 0 or null                  null         gradient-norm clipping
amp                bool or null                       null         mixed precision; null: on
                                                                   for CUDA, off on CPU
amp_dtype          auto, bfloat16, float16            auto         auto: bfloat16 where the GPU
                                                                   supports it, else float16
                                                                   with a GradScaler
workers            int in [0, 64]                     2            DataLoader workers/process
seed               int in [0, 2**32)                  0            reproducible runs
pretrained_path    absolute path, file:// URI, null   null         weights to start from (.pt,
                                                                   .pth, .bin, .safetensors or
                                                                   this trainer's best/last.pt);
                                                                   head re-initialised when the
                                                                   class count differs
architecture       timm model name or null            null         for a TRAINYARD_MODEL weights
                                                                   file that does not name it
=================  =================================  ===========  ==============================
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from trainer.resume import ResumeSource
from trainer.storage import S3Location

ENV_PREFIX = "TRAINYARD_"
TASKS = ("classify",)

Optimizer = Literal[
    "sgd",
    "momentum",
    "nesterov",
    "adam",
    "adamw",
    "nadam",
    "nadamw",
    "radam",
    "adamp",
    "sgdp",
    "rmsprop",
    "rmsproptf",
    "adabelief",
    "adafactor",
    "adan",
    "lamb",
    "lars",
    "lion",
    "laprop",
    "madgrad",
    "novograd",
]
# timm optimizers a job may ask for (all in timm.optim.list_optimizers(); checked by a test).
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
_AUTO_AUGMENT = re.compile(r"^(rand|augmix|original|originalr|v0|v0r|3a)(-[A-Za-z_]+[0-9.]*)*$")

# What each variable must look like, for the one-line error message.
_EXPECTED: Mapping[str, str] = {
    "job_id": "a non-empty string",
    "attempt": "an integer ≥ 1",
    "callback_url": "an http(s) URL such as http://127.0.0.1:8000",
    "callback_token": "a non-empty string",
    "model": "a timm model name (e.g. resnet18) or an absolute weights path",
    "dataset_uri": "a non-empty URI such as file:///abs/path",
    "output_dir": "a folder path",
    "task": "classify",
    "epochs": "an integer ≥ 1",
    "imgsz": "an integer ≥ 1",
    "batch": "an integer ≥ 1",
    "gpus": "an integer ≥ 0",
    "hyperparameters": "a JSON object of timm hyperparameters",
    "keepalive_s": "a number > 0",
    "output_uri": "an s3://bucket[/prefix] URI",
    "resume_from": "an absolute path, file:///abs/path or s3://bucket/key URI of a checkpoint",
}


class ContractError(Exception):
    """A missing or malformed environment variable; ``str(err)`` is the one-line message."""


def local_path(value: str) -> Path | None:
    """``/abs/path`` or ``file:///abs/path`` → the path; anything else → None."""
    parts = urlsplit(value)
    if parts.scheme == "file" and parts.netloc in {"", "localhost"}:
        path = Path(unquote(parts.path))
    elif parts.scheme == "" and value.startswith("/"):
        path = Path(value)
    else:
        return None
    return path if path.is_absolute() else None


class Hyperparameters(BaseModel):
    """``TRAINYARD_HYPERPARAMETERS``; see the table in this module's docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Optimizer = "adamw"
    lr: float = Field(default=1e-3, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(default=0.05, ge=0, allow_inf_nan=False)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    scheduler: Literal["cosine", "step", "tanh", "poly", "none"] = "cosine"
    warmup_epochs: int = Field(default=0, ge=0)
    warmup_lr: float = Field(default=1e-5, ge=0, allow_inf_nan=False)
    min_lr: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    decay_epochs: int | None = Field(default=None, ge=1)
    decay_rate: float = Field(default=0.1, gt=0, le=1)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    hflip: float = Field(default=0.5, ge=0, le=1)
    vflip: float = Field(default=0.0, ge=0, le=1)
    scale_min: float = Field(default=0.08, gt=0, le=1)
    color_jitter: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    auto_augment: str | None = None
    mixup: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    cutmix: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    drop_rate: float = Field(default=0.0, ge=0, lt=1)
    drop_path_rate: float = Field(default=0.0, ge=0, lt=1)
    clip_grad: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    amp: bool | None = None
    amp_dtype: Literal["auto", "bfloat16", "float16"] = "auto"
    workers: int = Field(default=2, ge=0, le=64)
    seed: int = Field(default=0, ge=0, lt=2**32)
    pretrained_path: str | None = None
    architecture: str | None = None

    @field_validator("auto_augment")
    @classmethod
    def _check_auto_augment(cls, value: str | None) -> str | None:
        if value is not None and not _AUTO_AUGMENT.match(value):
            raise ValueError("not a timm auto-augment policy such as 'rand-m9-mstd0.5'")
        return value

    @field_validator("pretrained_path")
    @classmethod
    def _check_pretrained_path(cls, value: str | None) -> str | None:
        if value is not None and local_path(value) is None:
            raise ValueError("not an absolute path or file:/// URI")
        return value

    @field_validator("architecture")
    @classmethod
    def _check_architecture(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty")
        return value


def _hyperparameter_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error.get("loc", ())) or "?"
    if error.get("type") == "extra_forbidden":
        return f"unknown key {key!r}"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"key {key!r}: {message}"


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
    task: str = Field(default="classify")
    epochs: int = Field(ge=1)
    imgsz: int = Field(default=224, ge=1)
    batch: int = Field(default=32, ge=1)
    gpus: int = Field(default=0, ge=0)
    hyperparameters: Annotated[Hyperparameters, NoDecode] = Field(default_factory=Hyperparameters)
    keepalive_s: float = Field(default=15.0, gt=0)
    # Object storage the run is published to (checkpoints, weights, result files); unset:
    # artifacts stay in output_dir and are reported as local paths.
    output_uri: str | None = None
    # A checkpoint an earlier attempt of this job saved (the `data.path` of its newest
    # checkpoint_saved event): continue training from it (trainer/resume.py).
    resume_from: str | None = None

    @field_validator("job_id", "model", "dataset_uri", "task", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("task")
    @classmethod
    def _check_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError("unsupported task")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if "://" in value and local_path(value) is None:
            raise ValueError("not a model name or local path")
        return value

    @field_validator("callback_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
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
            raise ValueError(_hyperparameter_problem(exc)) from None

    def resume_source(self) -> ResumeSource | None:
        """Where the checkpoint to resume from is, if this attempt resumes."""
        return None if self.resume_from is None else ResumeSource.parse(self.resume_from)

    def model_path(self) -> Path | None:
        """TRAINYARD_MODEL as a local weights file, or None when it is a timm model name."""
        return local_path(self.model)

    def device_name(self) -> str:
        """``cpu`` for 0 GPUs, else ``cuda:0`` or ``cuda:0,1,…``."""
        if self.gpus == 0:
            return "cpu"
        return "cuda:" + ",".join(str(i) for i in range(self.gpus))


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
