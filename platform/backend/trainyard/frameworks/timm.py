"""timm (image classification): the models a job may name and the hyperparameters it may set.

Any architecture timm (the version pinned by trainers/timm) can build, trained from random
init: `resnet18`, `convnext_tiny`, `vit_tiny_patch16_224`, … (`timm_models.txt`, written by
tools/framework_models.py). A pretrained tag (`resnet18.a1_in1k`) is accepted and ignored
unless weights are given with `pretrained_path`. The bounds match trainers/timm/trainer/settings.py.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainyard.frameworks.job_base import MAX_BATCH, JobCreateBase

EXAMPLE_MODELS = ("resnet18", "convnext_tiny", "efficientnet_b0", "vit_tiny_patch16_224")
_NAME = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)?")


@functools.cache
def architectures() -> frozenset[str]:
    path = Path(__file__).with_name("timm_models.txt")
    return frozenset(line.strip() for line in path.read_text("utf-8").splitlines() if line.strip())


def recognise_model(word: str) -> str | None:
    """The architecture a word names (`ResNet18` -> `resnet18`), if timm has it."""
    word = word.lower()
    if _NAME.fullmatch(word) and word.split(".")[0] in architectures():
        return word
    return None


def check_model(name: str) -> str:
    """Return `name` if timm can build it, else raise ValueError."""
    if recognise_model(name) != name:
        raise ValueError(
            f"{name!r} is not a timm model; expected an architecture such as "
            + ", ".join(EXAMPLE_MODELS)
        )
    return name


Fraction = Field(default=None, ge=0.0, le=1.0)
_Rate = Field(default=None, ge=0.0, lt=1.0)
Optimizer = Literal[
    "sgd", "momentum", "nesterov", "adam", "adamw", "nadam", "nadamw", "radam", "adamp", "sgdp",
    "rmsprop", "rmsproptf", "adabelief", "adafactor", "adan", "lamb", "lars", "lion", "laprop",
    "madgrad", "novograd",
]  # fmt: skip


class TimmHyperparameters(BaseModel):
    """Optional training settings (trainers/timm/trainer/settings.py has the same bounds and
    the defaults that apply to what is left out)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    optimizer: Optimizer | None = None
    lr: float | None = Field(default=None, gt=0.0, le=10.0)
    weight_decay: float | None = Field(default=None, ge=0.0, le=1.0)
    momentum: float | None = _Rate
    scheduler: Literal["cosine", "step", "tanh", "poly", "none"] | None = None
    warmup_epochs: int | None = Field(default=None, ge=0, le=10_000)
    warmup_lr: float | None = Field(default=None, ge=0.0, le=10.0)
    min_lr: float | None = Field(default=None, ge=0.0, le=10.0)
    decay_epochs: int | None = Field(default=None, ge=1, le=100_000)
    decay_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    label_smoothing: float | None = _Rate
    hflip: float | None = Fraction
    vflip: float | None = Fraction
    scale_min: float | None = Field(default=None, gt=0.0, le=1.0)
    color_jitter: float | None = Field(default=None, ge=0.0, le=10.0)
    auto_augment: str | None = Field(default=None, min_length=1, max_length=64)
    mixup: float | None = Field(default=None, ge=0.0, le=10.0)
    cutmix: float | None = Field(default=None, ge=0.0, le=10.0)
    drop_rate: float | None = _Rate
    drop_path_rate: float | None = _Rate
    clip_grad: float | None = Field(default=None, gt=0.0, le=1e6)
    amp: bool | None = None
    amp_dtype: Literal["auto", "bfloat16", "float16"] | None = None
    workers: int | None = Field(default=None, ge=0, le=64)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    pretrained_path: str | None = Field(default=None, min_length=1, max_length=1024)
    architecture: str | None = Field(default=None, min_length=1, max_length=256)


class TimmJobCreate(JobCreateBase):
    """An image-classification job on an ImageFolder dataset (trainers/timm)."""

    framework: Literal["timm"]
    task: Literal["classify"] = "classify"
    imgsz: int = Field(default=224, ge=16, le=4096)
    batch: int = Field(default=32, ge=1, le=MAX_BATCH)
    hyperparameters: TimmHyperparameters = Field(default_factory=TimmHyperparameters)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return check_model(value)


JobCreate = TimmJobCreate
