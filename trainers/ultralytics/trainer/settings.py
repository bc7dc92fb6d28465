"""The trainer's environment contract, read with pydantic-settings (prefix ``TRAINYARD_``).

`load_settings` turns any problem into a `ContractError` whose message is one line that starts
with the variable's name, e.g. ``TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'``; `main`
prints it and exits 2 (see docs/trainer-contract.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from trainer.resume import ResumeSource
from trainer.storage import S3Location

ENV_PREFIX = "TRAINYARD_"

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

# What each variable must look like, for the one-line error message.
_EXPECTED: Mapping[str, str] = {
    "job_id": "a non-empty string",
    "attempt": "an integer ≥ 1",
    "callback_url": "an http(s) URL such as http://127.0.0.1:8000",
    "callback_token": "a non-empty string",
    "model": "a non-empty model name, config or weights path",
    "dataset_uri": "a non-empty URI such as file:///abs/path",
    "output_dir": "a folder path",
    "task": "a non-empty task name such as detect",
    "epochs": "an integer ≥ 1",
    "imgsz": "an integer ≥ 1",
    "batch": "an integer ≥ 1",
    "gpus": "an integer ≥ 0",
    "hyperparameters": "a JSON object",
    "keepalive_s": "a number > 0",
    "output_uri": "an s3://bucket[/prefix] URI",
    "resume_from": "an absolute path, file:///abs/path or s3://bucket/key URI of a checkpoint",
}


class ContractError(Exception):
    """A missing or malformed environment variable; ``str(err)`` is the one-line message."""


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
    task: str = Field(default="detect", min_length=1)
    epochs: int = Field(ge=1)
    imgsz: int = Field(default=640, ge=1)
    batch: int = Field(default=16, ge=1)
    gpus: int = Field(default=0, ge=0)
    hyperparameters: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
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
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        for key in value:
            if key in RESERVED_HYPERPARAMETERS:
                raise ValueError(f"key {key!r} is set by {RESERVED_HYPERPARAMETERS[key]}")
        return value

    def resume_source(self) -> ResumeSource | None:
        """Where the checkpoint to resume from is, if this attempt resumes."""
        return None if self.resume_from is None else ResumeSource.parse(self.resume_from)

    def ultralytics_device(self) -> str:
        """Ultralytics' ``device`` argument: ``cpu`` for 0 GPUs, else ``0`` or ``0,1,…``."""
        return "cpu" if self.gpus == 0 else ",".join(str(i) for i in range(self.gpus))


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
