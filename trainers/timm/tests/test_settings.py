from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainer_kit.settings import ContractError

from trainer.settings import OPTIMIZERS, Hyperparameters, TrainerSettings, load_settings

REQUIRED = {
    "TRAINYARD_JOB_ID": "job_1",
    "TRAINYARD_ATTEMPT": "1",
    "TRAINYARD_CALLBACK_URL": "http://127.0.0.1:8000/",
    "TRAINYARD_CALLBACK_TOKEN": "s3cret",
    "TRAINYARD_MODEL": "resnet18",
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
    assert (settings.task, settings.imgsz, settings.batch, settings.gpus) == (
        "classify",
        224,
        32,
        0,
    )
    assert settings.hyperparameters == Hyperparameters()
    assert settings.keepalive_s == 15.0
    assert settings.output_uri is None
    assert settings.device_name() == "cpu"
    assert settings.model_path() is None


def test_hyperparameter_defaults() -> None:
    hp = Hyperparameters()
    assert hp.model_dump() == {
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "momentum": 0.9,
        "scheduler": "cosine",
        "warmup_epochs": 0,
        "warmup_lr": 1e-5,
        "min_lr": 0.0,
        "decay_epochs": None,
        "decay_rate": 0.1,
        "label_smoothing": 0.1,
        "hflip": 0.5,
        "vflip": 0.0,
        "scale_min": 0.08,
        "color_jitter": 0.0,
        "auto_augment": None,
        "mixup": 0.0,
        "cutmix": 0.0,
        "drop_rate": 0.0,
        "drop_path_rate": 0.0,
        "clip_grad": None,
        "amp": None,
        "amp_dtype": "auto",
        "workers": 2,
        "seed": 0,
        "pretrained_path": None,
        "architecture": None,
    }


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRAINYARD_GPUS", "2")
    monkeypatch.setenv("TRAINYARD_HYPERPARAMETERS", '{"lr": 0.02, "optimizer": "sgd"}')
    monkeypatch.setenv("TRAINYARD_MODEL", "file:///w/best.pt")

    settings = load_settings()

    assert settings.device_name() == "cuda:0,1"
    assert (settings.hyperparameters.lr, settings.hyperparameters.optimizer) == (0.02, "sgd")
    assert settings.model_path() == Path("/w/best.pt")


HYPER = "TRAINYARD_HYPERPARAMETERS: must be a JSON object of timm hyperparameters"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRAINYARD_BATCH", "1.5", "TRAINYARD_BATCH: must be an integer ≥ 1, got '1.5'"),
        ("TRAINYARD_IMGSZ", "0", "TRAINYARD_IMGSZ: must be an integer ≥ 1, got '0'"),
        ("TRAINYARD_TASK", "detect", "TRAINYARD_TASK: must be classify, got 'detect'"),
        (
            "TRAINYARD_MODEL",
            "s3://b/w.pt",
            "TRAINYARD_MODEL: must be a timm model name (e.g. resnet18) or an absolute weights "
            "path, got 's3://b/w.pt'",
        ),
        ("TRAINYARD_HYPERPARAMETERS", "[1, 2]", f"{HYPER} (not a JSON object), got '[1, 2]'"),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"epochs": 5}',
            f"{HYPER} (unknown key 'epochs'), got '{{\"epochs\": 5}}'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"lr": 0}',
            f"{HYPER} (key 'lr': Input should be greater than 0), got '{{\"lr\": 0}}'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"optimizer": "adamx"}',
            f"{HYPER} (key 'optimizer': Input should be 'sgd', 'momentum', 'nesterov', 'adam', "
            "'adamw', 'nadam', 'nadamw', 'radam', 'adamp', 'sgdp', 'rmsprop', 'rmsproptf', "
            "'adabelief', 'adafactor', 'adan', 'lamb', 'lars', 'lion', 'laprop', 'madgrad' or "
            "'novograd'), got '{\"optimizer\": \"adamx\"}'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"auto_augment": "fancy"}',
            f"{HYPER} (key 'auto_augment': not a timm auto-augment policy such as "
            "'rand-m9-mstd0.5'), got '{\"auto_augment\": \"fancy\"}'",
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"pretrained_path": "w.pt"}',
            f"{HYPER} (key 'pretrained_path': not an absolute path or file:/// URI), "
            'got \'{"pretrained_path": "w.pt"}\'',
        ),
        (
            "TRAINYARD_HYPERPARAMETERS",
            '{"amp": "maybe"}',
            f"{HYPER} (key 'amp': Input should be a valid boolean, unable to interpret input), "
            'got \'{"amp": "maybe"}\'',
        ),
    ],
)
def test_malformed_variable_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ContractError) as info:
        load_settings({**REQUIRED, name: value})
    assert str(info.value) == message
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "hyper",
    [
        {"scheduler": "step", "decay_epochs": 2, "decay_rate": 0.5},
        {"auto_augment": "rand-m9-mstd0.5-inc1"},
        {"auto_augment": "augmix-m5-w4-d2"},
        {"auto_augment": "original"},
        {"mixup": 0.8, "cutmix": 1.0, "label_smoothing": 0.0},
        {"amp": True, "amp_dtype": "float16", "clip_grad": 5.0},
        {"pretrained_path": "file:///w/x.safetensors", "architecture": "resnet18"},
    ],
)
def test_valid_hyperparameters_are_accepted(hyper: dict[str, object]) -> None:
    settings = load_settings({**REQUIRED, "TRAINYARD_HYPERPARAMETERS": json.dumps(hyper)})
    assert settings.hyperparameters.model_dump(exclude_defaults=True) == hyper


def test_every_allowed_optimizer_and_policy_exists_in_timm() -> None:
    import timm.data
    import timm.optim

    assert set(OPTIMIZERS) <= set(timm.optim.list_optimizers())
    for policy in ("rand-m9-mstd0.5", "augmix-m5-w4", "original", "v0", "3a"):
        timm.data.create_transform(32, is_training=True, auto_augment=policy)


def test_settings_are_frozen() -> None:
    settings = load_settings(REQUIRED)
    with pytest.raises(ValueError, match="frozen"):
        settings.epochs = 5  # type: ignore[misc]
    assert isinstance(settings, TrainerSettings)
