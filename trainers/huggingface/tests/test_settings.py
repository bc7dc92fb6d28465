from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trainer_kit.settings import ContractError

from trainer.environment import prepare_environment
from trainer.settings import Hyperparameters, TrainerSettings, load_settings

REQUIRED = {
    "TRAINYARD_JOB_ID": "job_1",
    "TRAINYARD_ATTEMPT": "1",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:8000/",
    "TRAINYARD_CALLBACK_TOKEN": "s3cret",
    "TRAINYARD_MODEL": "vit",
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
    assert (settings.task, settings.imgsz, settings.batch, settings.gpus) == (None, 224, 16, 0)
    assert settings.hyperparameters == Hyperparameters()
    assert settings.keepalive_s == 15.0
    assert settings.output_uri is None
    assert settings.resume_from is None
    assert settings.device_name() == "cpu"


def test_hyperparameter_defaults() -> None:
    hp = Hyperparameters()
    assert hp.model_dump(by_alias=True) == {
        "learning_rate": 5e-5,
        "weight_decay": 0.0,
        "warmup_ratio": 0.0,
        "lr_scheduler_type": "linear",
        "optim": "adamw_torch",
        "max_length": 128,
        "seed": 0,
        "gradient_accumulation_steps": 1,
        "fp16": False,
        "bf16": False,
        "dataloader_num_workers": 0,
        "model_config": {},
        "vocab_size": 8000,
        "label_smoothing_factor": 0.0,
    }


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("image-classification", "image-classification"),
        ("classify", "image-classification"),
        ("Text-Classification", "text-classification"),
        ("", None),
    ],
)
def test_task_and_its_alias(task: str, expected: str | None) -> None:
    assert load_settings({**REQUIRED, "TRAINYARD_TASK": task}).task == expected


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRAINYARD_GPUS", "2")
    monkeypatch.setenv(
        "TRAINYARD_HYPERPARAMETERS",
        '{"learning_rate": 0.001, "model_config": {"hidden_size": 32}, "fp16": true}',
    )

    settings = load_settings()

    assert settings.device_name() == "cuda:0,1"
    hp = settings.hyperparameters
    assert (hp.learning_rate, hp.model_config_overrides, hp.fp16) == (
        0.001,
        {"hidden_size": 32},
        True,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRAINYARD_BATCH", "1.5", "TRAINYARD_BATCH: must be an integer ≥ 1, got '1.5'"),
        ("TRAINYARD_IMGSZ", "0", "TRAINYARD_IMGSZ: must be an integer ≥ 1, got '0'"),
        (
            "TRAINYARD_TASK",
            "segment",
            "TRAINYARD_TASK: must be one of image-classification, text-classification "
            "(or classify), got 'segment'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            "[1, 2]",
            "TRAINYARD_HYPERPARAMETERS: must be a JSON object of known hyperparameters "
            "(not a JSON object), got '[1, 2]'",
        ),
    ],
)
def test_malformed_variable_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ContractError) as info:
        load_settings({**REQUIRED, name: value})
    assert str(info.value) == message
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("hyperparameters", "detail"),
    [
        ({"epochs": 5}, "epochs: unknown hyperparameter"),
        ({"learning_rate": 0}, "learning_rate: Input should be greater than 0"),
        ({"learning_rate": "fast"}, "learning_rate: Input should be a valid number"),
        ({"warmup_ratio": 1.0}, "warmup_ratio: Input should be less than 1"),
        ({"lr_scheduler_type": "exotic"}, "lr_scheduler_type: Input should be 'linear'"),
        ({"optim": "adamw_bnb_8bit"}, "optim: Input should be 'adamw_torch'"),
        ({"max_length": 0}, "max_length: Input should be greater than or equal to 1"),
        ({"seed": 1.5}, "seed: must be an integer"),
        ({"seed": True}, "seed: must be an integer"),
        ({"fp16": "yes"}, "fp16: must be true or false"),
        ({"fp16": True, "bf16": True}, "fp16 and bf16 cannot both be true"),
        ({"model_config": [1]}, "model_config: Input should be a valid dictionary"),
        ({"vocab_size": 10}, "vocab_size: Input should be greater than or equal to 100"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps: Input should be"),
        ({"label_smoothing_factor": -0.1}, "label_smoothing_factor: Input should be greater"),
    ],
)
def test_bad_hyperparameter_is_a_contract_error_naming_the_key(
    hyperparameters: dict[str, Any], detail: str
) -> None:
    import json

    with pytest.raises(ContractError) as info:
        load_settings({**REQUIRED, "TRAINYARD_HYPERPARAMETERS": json.dumps(hyperparameters)})
    message = str(info.value)
    assert message.startswith(
        "TRAINYARD_HYPERPARAMETERS: must be a JSON object of known hyperparameters ("
    )
    assert detail in message


def test_invalid_json_hyperparameters() -> None:
    with pytest.raises(ContractError) as info:
        load_settings({**REQUIRED, "TRAINYARD_HYPERPARAMETERS": "{lr: 1"})
    assert str(info.value).startswith(
        "TRAINYARD_HYPERPARAMETERS: must be a JSON object of known hyperparameters (invalid"
    )


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("/runs/a/run/checkpoints/checkpoint-8", True),
        ("file:///runs/a/run/checkpoints/checkpoint-8", True),
        ("s3://bucket/jobs/j/attempt-1/run/checkpoints/checkpoint-8", True),
        ("s3://bucket", False),
        ("checkpoint-8", False),
        ("gs://bucket/x", False),
    ],
)
def test_resume_from_forms(value: str, ok: bool) -> None:
    if ok:
        assert load_settings({**REQUIRED, "TRAINYARD_RESUME_FROM": value}).resume_from == value
    else:
        with pytest.raises(ContractError, match=r"^TRAINYARD_RESUME_FROM: must be"):
            load_settings({**REQUIRED, "TRAINYARD_RESUME_FROM": value})


def test_a_relative_resume_from_is_refused_asking_for_a_checkpoint_folder() -> None:
    # Exit 2 with this line, and no callback, is the conformance suite's (for every trainer).
    with pytest.raises(ContractError) as refused:
        load_settings({**REQUIRED, "TRAINYARD_RESUME_FROM": "run/checkpoints/checkpoint-4"})
    assert str(refused.value) == (
        "TRAINYARD_RESUME_FROM: must be an absolute path, file:///abs/path or s3://bucket/prefix "
        "URI of a checkpoint folder, got 'run/checkpoints/checkpoint-4'"
    )


def test_settings_are_frozen() -> None:
    settings = load_settings(REQUIRED)
    with pytest.raises(ValueError, match="frozen"):
        settings.epochs = 5  # type: ignore[misc]
    assert isinstance(settings, TrainerSettings)


def test_prepare_environment_keeps_transformers_offline_and_inside_the_output_dir(
    tmp_path: Path,
) -> None:
    env = {"HF_TOKEN": "hf_x", "HUGGING_FACE_HUB_TOKEN": "hf_y", "HOME": "/home/x"}

    private = prepare_environment(tmp_path / "out", env)

    assert private == tmp_path / "out" / ".trainer"
    assert private.is_dir()
    assert env == {
        "HOME": "/home/x",
        "HF_HOME": str(private / "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DISABLE_KUBEFLOW_INTEGRATION": "TRUE",
        "TOKENIZERS_PARALLELISM": "false",
        "MPLCONFIGDIR": str(private / "matplotlib"),
    }
