"""Ultralytics (YOLO): the models a job may name and the hyperparameters it may set.

Bounds follow ultralytics' own checks (`cfg/__init__.py`: fraction keys in [0, 1], counts
≥ 0). Keys the platform sets itself (data, epochs, imgsz, batch, device, project, name) are
not hyperparameters and are refused here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainyard.frameworks.job_base import JobCreateBase

# Known detection families, as `.yaml` (architecture, random init) or `.pt` (pretrained).
MODEL_PATTERN = re.compile(
    r"(?:yolov3u?|yolov3-(?:tiny|spp)u?|yolov5[nsmlx]6?u?|yolov6[nsmlx]|yolov8[nsmlx]"
    r"|yolov9[tsmce]|yolov10[nsmblx]|yolo11[nsmlx]|yolo12[nsmlx]|yolo26[nsmlx]|rtdetr-[lx])"
    r"(?:-p2|-p6)?\.(?:yaml|pt)"
)

EXAMPLE_MODELS = ("yolo11n.yaml", "yolo11n.pt", "yolov8s.pt", "yolov10n.yaml", "rtdetr-l.pt")


def recognise_model(word: str) -> str | None:
    """The model a word names: itself (`yolo11n.pt`), or for a bare name its architecture
    (`yolo11n` -> `yolo11n.yaml`, trained from random init: nothing to download)."""
    word = word.lower()
    if MODEL_PATTERN.fullmatch(word):
        return word
    if MODEL_PATTERN.fullmatch(f"{word}.yaml"):
        return f"{word}.yaml"
    return None


def check_model(name: str) -> str:
    """Return `name` if it names an ultralytics detection model, else raise ValueError."""
    if not MODEL_PATTERN.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an ultralytics detection model; expected a name such as "
            + ", ".join(EXAMPLE_MODELS)
        )
    return name


Fraction = Field(default=None, ge=0.0, le=1.0)


class UltralyticsHyperparameters(BaseModel):
    """Training arguments passed through to `model.train(...)`; every one is optional."""

    # strict: "0.01" is not a learning rate; inf/nan are never valid hyperparameters.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    # optimisation
    optimizer: (
        Literal["auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp"] | None
    ) = None
    lr0: float | None = Field(default=None, gt=0.0, le=1.0)
    lrf: float | None = Field(default=None, gt=0.0, le=1.0)
    momentum: float | None = Fraction
    weight_decay: float | None = Field(default=None, ge=0.0, le=1.0)
    warmup_epochs: float | None = Field(default=None, ge=0.0, le=1000.0)
    warmup_momentum: float | None = Fraction
    warmup_bias_lr: float | None = Fraction
    cos_lr: bool | None = None
    patience: int | None = Field(default=None, ge=0, le=100_000)
    nbs: int | None = Field(default=None, ge=1, le=10_000)
    box: float | None = Field(default=None, ge=0.0, le=1000.0)
    cls: float | None = Field(default=None, ge=0.0, le=1000.0)
    dfl: float | None = Field(default=None, ge=0.0, le=1000.0)
    dropout: float | None = Fraction
    freeze: int | None = Field(default=None, ge=0, le=1000)
    # reproducibility and runtime
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    deterministic: bool | None = None
    amp: bool | None = None
    workers: int | None = Field(default=None, ge=0, le=64)
    cache: Literal["ram", "disk"] | bool | None = None
    single_cls: bool | None = None
    rect: bool | None = None
    fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    val: bool | None = None
    save_period: int | None = Field(default=None, ge=-1, le=100_000)
    # augmentation
    close_mosaic: int | None = Field(default=None, ge=0, le=100_000)
    mosaic: float | None = Fraction
    mixup: float | None = Fraction
    cutmix: float | None = Fraction
    copy_paste: float | None = Fraction
    fliplr: float | None = Fraction
    flipud: float | None = Fraction
    bgr: float | None = Fraction
    hsv_h: float | None = Fraction
    hsv_s: float | None = Fraction
    hsv_v: float | None = Fraction
    degrees: float | None = Field(default=None, ge=-180.0, le=180.0)
    translate: float | None = Fraction
    scale: float | None = Fraction
    shear: float | None = Field(default=None, ge=-180.0, le=180.0)
    perspective: float | None = Field(default=None, ge=0.0, le=0.001)


class UltralyticsJobCreate(JobCreateBase):
    """A YOLO detection job (trainers/ultralytics)."""

    framework: Literal["ultralytics"] = "ultralytics"
    task: Literal["detect"] = "detect"
    imgsz: int = Field(default=640, ge=32, le=4096, multiple_of=32)
    hyperparameters: UltralyticsHyperparameters = Field(default_factory=UltralyticsHyperparameters)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return check_model(value)


JobCreate = UltralyticsJobCreate
