"""trainer_kit.settings: the contract's common variables and their one-line errors, through a
minimal trainer's settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from trainer_kit.settings import (
    COMMON_EXPECTED,
    ContractError,
    ContractSettings,
    parse_json_object,
    read_settings,
)


class ExampleSettings(ContractSettings):
    """A trainer's settings: its own task and hyperparameters on top of the common ones."""

    expected: ClassVar[Mapping[str, str]] = {
        **COMMON_EXPECTED,
        "model": "a model name",
        "task": "detect",
        "hyperparameters": "a JSON object",
    }

    task: str = "detect"
    imgsz: int = Field(default=64, ge=1)
    hyperparameters: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _check_task(cls, value: str) -> str:
        if value != "detect":
            raise ValueError("unsupported task")
        return value

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _parse_hyperparameters(cls, value: Any) -> Any:
        return parse_json_object(value)


REQUIRED = {
    "TRAINYARD_JOB_ID": "job_1",
    "TRAINYARD_ATTEMPT": "1",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:8000/",
    "TRAINYARD_CALLBACK_TOKEN": "s3cret",
    "TRAINYARD_MODEL": "m",
    "TRAINYARD_DATASET_URI": "file:///data/set",
    "TRAINYARD_OUTPUT_DIR": "/tmp/out",
    "TRAINYARD_EPOCHS": "3",
}


def _load(environ: Mapping[str, str]) -> ExampleSettings:
    return read_settings(ExampleSettings, environ)


def test_defaults_and_parsing() -> None:
    settings = _load(
        {
            **REQUIRED,
            "TRAINYARD_JOB_ID": " job_1 ",
            "TRAINYARD_OUTPUT_URI": "s3://b/jobs/j/",
            "TRAINYARD_RESUME_FROM": " s3://b/jobs/j/run/weights/last.pt ",
            "OTHER": "ignored",
        }
    )

    assert settings.job_id == "job_1"
    assert settings.callback_url == "http://127.0.0.1:8000"
    assert settings.callback_token.get_secret_value() == "s3cret"
    assert settings.output_dir == Path("/tmp/out").resolve()
    assert (settings.gpus, settings.keepalive_s, settings.imgsz) == (0, 15.0, 64)
    assert settings.output_uri == "s3://b/jobs/j"
    source = settings.resume_source()
    assert source is not None
    assert source.s3 is not None
    assert source.s3.prefix == "jobs/j/run/weights/last.pt"
    assert _load(REQUIRED).resume_source() is None
    assert _load({**REQUIRED, "TRAINYARD_OUTPUT_URI": " "}).output_uri is None


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRAINYARD_HYPERPARAMETERS", '{"lr": 0.1}')

    settings = read_settings(ExampleSettings)

    assert settings.job_id == "job_1"
    assert settings.hyperparameters == {"lr": 0.1}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_missing_required_variable_is_named(name: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(ContractError) as info:
        _load(env)
    assert str(info.value) == f"{name}: required but not set"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRAINYARD_EPOCHS", "x", "TRAINYARD_EPOCHS: must be an integer ≥ 1, got 'x'"),
        ("TRAINYARD_ATTEMPT", "0", "TRAINYARD_ATTEMPT: must be an integer ≥ 1, got '0'"),
        ("TRAINYARD_GPUS", "-1", "TRAINYARD_GPUS: must be an integer ≥ 0, got '-1'"),
        ("TRAINYARD_IMGSZ", "0", "TRAINYARD_IMGSZ: must be an integer ≥ 1, got '0'"),
        ("TRAINYARD_KEEPALIVE_S", "0", "TRAINYARD_KEEPALIVE_S: must be a number > 0, got '0'"),
        ("TRAINYARD_JOB_ID", "", "TRAINYARD_JOB_ID: must be a non-empty string, got ''"),
        ("TRAINYARD_JOB_ID", " ", "TRAINYARD_JOB_ID: must be a non-empty string, got ' '"),
        ("TRAINYARD_TASK", "segment", "TRAINYARD_TASK: must be detect, got 'segment'"),
        (
            "TRAINYARD_CALLBACK_URL",
            "ftp://x",
            "TRAINYARD_CALLBACK_URL: must be an http(s) URL such as http://127.0.0.1:8000, "
            "got 'ftp://x'",
        ),
        (
            "TRAINYARD_OUTPUT_URI",
            "gs://bucket/out",
            "TRAINYARD_OUTPUT_URI: must be an s3://bucket[/prefix] URI, got 'gs://bucket/out'",
        ),
        (
            "TRAINYARD_OUTPUT_URI",
            "s3://bucket/jobs/../x",
            "TRAINYARD_OUTPUT_URI: must be an s3://bucket[/prefix] URI, got 's3://bucket/jobs/../x'",
        ),
        (
            "TRAINYARD_RESUME_FROM",
            "runs/last.pt",
            "TRAINYARD_RESUME_FROM: must be an absolute path, file:///abs/path or s3://bucket/key "
            "URI of a checkpoint, got 'runs/last.pt'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            "[1, 2]",
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object (not a JSON object), got '[1, 2]'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            "{nope",
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object (invalid JSON (Expecting property "
            "name enclosed in double quotes)), got '{nope'",
        ),
        (
            "TRAINYARD_EPOCHS",
            "x" * 100,
            f"TRAINYARD_EPOCHS: must be an integer ≥ 1, got '{'x' * 77}...'",
        ),
    ],
)
def test_malformed_variable_is_named_on_one_line(name: str, value: str, message: str) -> None:
    with pytest.raises(ContractError) as info:
        _load({**REQUIRED, name: value})
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_token_is_never_echoed() -> None:
    with pytest.raises(ContractError) as info:
        _load({**REQUIRED, "TRAINYARD_CALLBACK_TOKEN": "   "})
    assert str(info.value) == "TRAINYARD_CALLBACK_TOKEN: must be a non-empty string, got <redacted>"


def test_first_bad_variable_in_the_contracts_order_wins() -> None:
    # task and hyperparameters are declared by the trainer (after the common variables), yet
    # come before keepalive_s in the contract.
    env = {**REQUIRED, "TRAINYARD_KEEPALIVE_S": "0", "TRAINYARD_HYPERPARAMETERS": "[]"}
    with pytest.raises(ContractError) as info:
        _load({**env, "TRAINYARD_TASK": "segment"})
    assert str(info.value).startswith("TRAINYARD_TASK: ")
    with pytest.raises(ContractError) as info:
        _load(env)
    assert str(info.value).startswith("TRAINYARD_HYPERPARAMETERS: ")
    del env["TRAINYARD_JOB_ID"]
    with pytest.raises(ContractError) as info:
        _load(env)
    assert str(info.value).startswith("TRAINYARD_JOB_ID: ")


def test_settings_are_frozen() -> None:
    settings = _load(REQUIRED)
    with pytest.raises(ValueError, match="frozen"):
        settings.epochs = 5  # type: ignore[misc]
