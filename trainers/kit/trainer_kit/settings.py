"""The environment contract's common part, read with pydantic-settings (prefix ``TRAINYARD_``).

`ContractSettings` declares the variables every trainer reads the same way (job, attempt,
callback URL and token, model, dataset, output dir, epochs, GPUs, keep-alive interval, output
URI, resume source); a trainer's ``TrainerSettings`` subclasses it with its own task, image
size, batch and hyperparameters, and its own `ContractSettings.expected` wording.

`read_settings` turns any problem into a `ContractError` whose message is one line that starts
with the variable's name, e.g. ``TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'``; with
several bad variables the first in the contract's order (`CONTRACT_ORDER`, as
docs/trainer-contract.md lists them) is named. The trainer prints it and exits 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from trainer_kit.callbacks import CallbackClient
from trainer_kit.fingerprint import Fingerprint
from trainer_kit.log_format import LogFormat
from trainer_kit.resume import ResumeSource
from trainer_kit.storage import S3Location

ENV_PREFIX = "TRAINYARD_"

# The variables in the contract's order: with several bad ones, the first of them is named.
CONTRACT_ORDER = (
    "job_id",
    "attempt",
    "callback_url",
    "callback_token",
    "model",
    "dataset_uri",
    "output_dir",
    "task",
    "epochs",
    "imgsz",
    "batch",
    "gpus",
    "hyperparameters",
    "keepalive_s",
    "log_format",
    "output_uri",
    "resume_from",
    "resume_size",
    "resume_sha256",
)

# What each variable must look like, for the one-line error message; a trainer adds (or
# rewords) the ones that depend on its framework: model, task and hyperparameters at least.
COMMON_EXPECTED: Mapping[str, str] = {
    "job_id": "a non-empty string",
    "attempt": "an integer ≥ 1",
    "callback_url": "an http(s) URL such as http://127.0.0.1:8000",
    "callback_token": "a non-empty string",
    "dataset_uri": "a non-empty URI such as file:///abs/path",
    "output_dir": "a folder path",
    "epochs": "an integer ≥ 1",
    "imgsz": "an integer ≥ 1",
    "batch": "an integer ≥ 1",
    "gpus": "an integer ≥ 0",
    "keepalive_s": "a number > 0",
    "log_format": "console or json",
    "output_uri": "an s3://bucket[/prefix] URI",
    "resume_from": "an absolute path, file:///abs/path or s3://bucket/key URI of a checkpoint",
    "resume_size": "an integer ≥ 0, set with TRAINYARD_RESUME_FROM",
    "resume_sha256": "64 lowercase hex digits, set with TRAINYARD_RESUME_FROM",
}

SettingsT = TypeVar("SettingsT", bound="ContractSettings")


class ContractError(Exception):
    """A missing or malformed environment variable; ``str(err)`` is the one-line message."""


def parse_json_object(value: Any) -> dict[str, Any]:
    """``TRAINYARD_HYPERPARAMETERS`` as a dict: a JSON object (empty text: ``{}``); raises
    ValueError naming what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class ContractSettings(BaseSettings):
    """The ``TRAINYARD_*`` variables every trainer reads the same way."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    expected: ClassVar[Mapping[str, str]] = COMMON_EXPECTED

    job_id: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    callback_url: str
    callback_token: SecretStr
    model: str = Field(min_length=1)
    dataset_uri: str = Field(min_length=1)
    output_dir: Path
    epochs: int = Field(ge=1)
    gpus: int = Field(default=0, ge=0)
    keepalive_s: float = Field(default=15.0, gt=0)
    # How the trainer's log lines look on stderr (log_format.py): the worker passes its own.
    log_format: LogFormat = "console"
    # Object storage the run is published to (checkpoints, weights, result files); unset:
    # artifacts stay in output_dir and are reported as local paths.
    output_uri: str | None = None
    # A checkpoint an earlier attempt of this job saved (the `data.path` of its newest
    # checkpoint_saved event): continue training from it (the trainer's trainer/resume.py).
    resume_from: str | None = None
    # What that checkpoint was when it was announced: it is refused if it is not that any more.
    resume_size: int | None = Field(default=None, ge=0)
    resume_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    # task is the trainer's own field (its type and values differ), stripped here all the same.
    @field_validator("job_id", "model", "dataset_uri", "task", mode="before", check_fields=False)
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

    def resume_source(self) -> ResumeSource | None:
        """Where the checkpoint to resume from is, if this attempt resumes, and what it was."""
        if self.resume_from is None:
            return None
        expected = None  # a run started by hand may name a checkpoint without its fingerprint
        if self.resume_size is not None and self.resume_sha256 is not None:
            expected = Fingerprint(self.resume_size, self.resume_sha256)
        return ResumeSource.parse(self.resume_from, expected)

    def callback_client(self, *, retry_for_s: float | None = None) -> CallbackClient:
        """The client of this attempt's callbacks (close it, or use it as a context manager);
        it retries for as long as the attempt lives unless `retry_for_s` bounds that."""
        return CallbackClient(
            self.callback_url,
            self.job_id,
            self.callback_token.get_secret_value(),
            retry_for_s=retry_for_s,
        )


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _describe(
    error: Mapping[str, Any], environ: Mapping[str, str], expected: Mapping[str, str]
) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "?"
    name = _env_name(field)
    raw = _lookup(environ, name)
    if raw is None:
        return f"{name}: required but not set"
    shown = "<redacted>" if field == "callback_token" else repr(_shorten(raw))
    detail = ""
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ValueError) and field == "hyperparameters":
        detail = f" ({ctx_error})"
    return f"{name}: must be {expected.get(field, 'valid')}{detail}, got {shown}"


def _shorten(raw: str, limit: int = 80) -> str:
    return raw if len(raw) <= limit else raw[: limit - 3] + "..."


def _lookup(environ: Mapping[str, str], name: str) -> str | None:
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def _contract_position(error: Mapping[str, Any], fields: list[str]) -> int:
    field = str(error["loc"][0]) if error.get("loc") else ""
    if field in CONTRACT_ORDER:
        return CONTRACT_ORDER.index(field)
    return len(CONTRACT_ORDER) + (fields.index(field) if field in fields else len(fields))


def read_settings(settings: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Read and validate the environment (``environ``: instead of the process environment);
    raise `ContractError` naming the first bad variable."""
    env = os.environ if environ is None else environ
    fields = list(settings.model_fields)
    try:
        if environ is None:
            return settings()
        # An explicit mapping (tests) replaces the process environment entirely.
        values = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in env.items()
            if key.upper().startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in fields
        }
        return settings.model_validate(values)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: _contract_position(e, fields))
        raise ContractError(_describe(errors[0], env, settings.expected)) from None
    except SettingsError as exc:  # pragma: no cover - decoding is disabled for the complex field
        raise ContractError(f"{ENV_PREFIX}*: {exc}") from None
