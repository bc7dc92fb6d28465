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

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import NoDecode
from trainer_kit.settings import (
    COMMON_EXPECTED,
    ContractSettings,
    parse_json_object,
    read_settings,
)

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

# What the framework-specific variables must look like, for the one-line error message.
_EXPECTED: Mapping[str, str] = {
    **COMMON_EXPECTED,
    "model": "a timm model name (e.g. resnet18) or an absolute weights path",
    "task": "classify",
    "hyperparameters": "a JSON object of timm hyperparameters",
}


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


class TrainerSettings(ContractSettings):
    """Everything the platform tells the trainer, from ``TRAINYARD_*`` environment variables."""

    expected: ClassVar[Mapping[str, str]] = _EXPECTED

    task: str = Field(default="classify")
    imgsz: int = Field(default=224, ge=1)
    batch: int = Field(default=32, ge=1)
    hyperparameters: Annotated[Hyperparameters, NoDecode] = Field(default_factory=Hyperparameters)

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

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _parse_hyperparameters(cls, value: Any) -> Any:
        if isinstance(value, Hyperparameters):
            return value
        try:
            return Hyperparameters.model_validate(parse_json_object(value))
        except ValidationError as exc:
            raise ValueError(_hyperparameter_problem(exc)) from None

    def model_path(self) -> Path | None:
        """TRAINYARD_MODEL as a local weights file, or None when it is a timm model name."""
        return local_path(self.model)

    def device_name(self) -> str:
        """``cpu`` for 0 GPUs, else ``cuda:0`` or ``cuda:0,1,…``."""
        if self.gpus == 0:
            return "cpu"
        return "cuda:" + ",".join(str(i) for i in range(self.gpus))


def load_settings(environ: Mapping[str, str] | None = None) -> TrainerSettings:
    """Read and validate the environment; raise `ContractError` naming the first bad variable."""
    return read_settings(TrainerSettings, environ)
