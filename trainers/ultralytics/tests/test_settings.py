from __future__ import annotations

from pathlib import Path

import pytest
from trainer_kit.settings import ContractError

from trainer.settings import TrainerSettings, load_settings

REQUIRED = {
    "TRAINYARD_JOB_ID": "job_1",
    "TRAINYARD_ATTEMPT": "1",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:8000/",
    "TRAINYARD_CALLBACK_TOKEN": "s3cret",
    "TRAINYARD_MODEL": "yolo11n.yaml",
    "TRAINYARD_DATASET_URI": "file:///data/set",
    "TRAINYARD_OUTPUT_DIR": "/tmp/out",
    "TRAINYARD_EPOCHS": "3",
}


def test_defaults_and_parsing() -> None:
    settings = load_settings(REQUIRED)

    assert settings.job_id == "job_1"
    assert settings.attempt == 1
    assert settings.callback_url == "http://127.0.0.1:8000"
    assert settings.callback_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.output_dir == Path("/tmp/out")
    assert (settings.task, settings.imgsz, settings.batch, settings.gpus) == ("detect", 640, 16, 0)
    assert settings.hyperparameters == {}
    assert settings.keepalive_s == 15.0
    assert settings.output_uri is None
    assert settings.ultralytics_device() == "cpu"


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRAINYARD_GPUS", "2")
    monkeypatch.setenv("TRAINYARD_HYPERPARAMETERS", '{"lr0": 0.02, "mosaic": 0.5}')

    settings = load_settings()

    assert settings.ultralytics_device() == "0,1"
    assert settings.hyperparameters == {"lr0": 0.02, "mosaic": 0.5}


@pytest.mark.parametrize("gpus", [1, 4])
def test_device_lists_the_gpus(gpus: int) -> None:
    settings = load_settings({**REQUIRED, "TRAINYARD_GPUS": str(gpus)})
    assert settings.ultralytics_device() == ",".join(str(i) for i in range(gpus))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRAINYARD_BATCH", "1.5", "TRAINYARD_BATCH: must be an integer ≥ 1, got '1.5'"),
        (
            "TRAINYARD_HYPERPARAMETERS",
            "[1, 2]",
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object (not a JSON object), got '[1, 2]'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"epochs": 5}',
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object (key 'epochs' is set by "
            "TRAINYARD_EPOCHS), got '{\"epochs\": 5}'",
        ),
    ],
)
def test_malformed_variable_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ContractError) as info:
        load_settings({**REQUIRED, name: value})
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_invalid_json_hyperparameters() -> None:
    with pytest.raises(ContractError) as info:
        load_settings({**REQUIRED, "TRAINYARD_HYPERPARAMETERS": "{lr0: 1"})
    assert str(info.value).startswith("TRAINYARD_HYPERPARAMETERS: must be a JSON object (invalid")


def test_settings_are_frozen() -> None:
    settings = load_settings(REQUIRED)
    with pytest.raises(ValueError, match="frozen"):
        settings.epochs = 5  # type: ignore[misc]
    assert isinstance(settings, TrainerSettings)
