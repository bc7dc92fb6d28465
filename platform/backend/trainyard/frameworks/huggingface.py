"""Hugging Face transformers (image and text classification): models and hyperparameters.

A model is a transformers model type built from its config with random init (`vit`,
`convnext`, … for images; `bert`, `distilbert`, `roberta`, … for text: the types the pinned
transformers maps to `AutoModelFor{Image,Sequence}Classification`, `huggingface_*_models.txt`
written by tools/framework_models.py), sized by the `model_config` hyperparameter; or an
absolute path (`file://` URI, or `s3://` prefix) of a model saved with `save_pretrained`.
Nothing is downloaded from the hub. The bounds match trainers/huggingface/trainer/settings.py.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainyard.frameworks.job_base import JobCreateBase

EXAMPLE_MODELS = ("vit", "convnext", "bert", "distilbert")
# Bare words the planner reads as Hugging Face models (the others are also timm's words).
_PLANNER_WORDS = frozenset({"bert", "distilbert", "roberta", "albert", "deberta", "electra"})


@functools.cache
def model_types(task: str) -> frozenset[str]:
    kind = "image" if task == "image-classification" else "text"
    path = Path(__file__).with_name(f"huggingface_{kind}_models.txt")
    return frozenset(line.strip() for line in path.read_text("utf-8").splitlines() if line.strip())


def recognise_model(word: str) -> str | None:
    """A bare text-model word (`BERT` -> `bert`); image model types are left to timm."""
    word = word.lower()
    return word if word in _PLANNER_WORDS else None


def _is_saved_model(name: str) -> bool:
    """An absolute path, `file://` URI or `s3://` prefix of a `save_pretrained` folder."""
    if name.startswith("s3://"):
        return len(name) > len("s3://") and ".." not in name.split("/")
    path = name.removeprefix("file://")
    return path.startswith("/") and ".." not in Path(path).parts


def check_model(name: str, task: str) -> str:
    """Return `name` if it is a model type for `task` or a saved model's path; else ValueError."""
    if name in model_types(task) or _is_saved_model(name):
        return name
    examples = sorted(model_types(task) & {"vit", "convnext", "bert", "distilbert", "roberta"})
    raise ValueError(
        f"{name!r} is not a transformers model type for {task}; expected one such as "
        + ", ".join(examples)
        + ", or the absolute path of a saved model"
    )


class HuggingfaceHyperparameters(BaseModel):
    """Optional `TrainingArguments` and model settings (trainers/huggingface/trainer/settings.py
    has the same bounds and the defaults that apply to what is left out)."""

    # protected_namespaces: `model_config` is a hyperparameter here (the model's config).
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, protected_namespaces=()
    )

    learning_rate: float | None = Field(default=None, gt=0.0, le=10.0)
    weight_decay: float | None = Field(default=None, ge=0.0, le=10.0)
    warmup_ratio: float | None = Field(default=None, ge=0.0, lt=1.0)
    lr_scheduler_type: (
        Literal[
            "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
            "constant_with_warmup", "inverse_sqrt",
        ]
        | None
    ) = None  # fmt: skip
    optim: (
        Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop"] | None
    ) = None
    max_length: int | None = Field(default=None, ge=1, le=8192)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    gradient_accumulation_steps: int | None = Field(default=None, ge=1, le=1024)
    fp16: bool | None = None
    bf16: bool | None = None
    dataloader_num_workers: int | None = Field(default=None, ge=0, le=64)
    model_config_overrides: dict[str, Any] | None = Field(default=None, alias="model_config")
    vocab_size: int | None = Field(default=None, ge=100, le=1_000_000)
    label_smoothing_factor: float | None = Field(default=None, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _one_precision(self) -> HuggingfaceHyperparameters:
        if self.fp16 and self.bf16:
            raise ValueError("fp16 and bf16 cannot both be on")
        return self


class HuggingfaceJobCreate(JobCreateBase):
    """An image- or text-classification job with transformers' Trainer (trainers/huggingface)."""

    framework: Literal["huggingface"]
    task: Literal["image-classification", "text-classification"] = "image-classification"
    imgsz: int = Field(default=224, ge=16, le=4096)
    hyperparameters: HuggingfaceHyperparameters = Field(default_factory=HuggingfaceHyperparameters)

    def field_problems(self) -> dict[str, str]:
        # Checked once every field is valid: which models fit depends on the task.
        try:
            check_model(self.model, self.task)
        except ValueError as error:
            return {"model": str(error)}
        return {}


JobCreate = HuggingfaceJobCreate
