from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_settings import REQUIRED

from trainer.dataset import prepare_data
from trainer.run import ENVIRONMENT, train_args
from trainer.settings import TrainerSettings, load_settings


def _settings(tmp_path: Path, **env: str) -> TrainerSettings:
    return load_settings({**REQUIRED, "TRAINYARD_OUTPUT_DIR": str(tmp_path / "out"), **env})


def test_prepare_data_sanitises_data_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "data.yaml").write_text(
        "path: sub\ntrain: images/train\nval: images/val\nnames: {0: a}\n"
        "download: https://example.com/set.zip\n",
        encoding="utf-8",
    )
    settings = _settings(tmp_path, TRAINYARD_DATASET_URI=folder.as_uri())
    private = tmp_path / "private"
    private.mkdir()

    data = yaml.safe_load(Path(prepare_data(settings, private)).read_text(encoding="utf-8"))

    assert data == {
        "path": str(folder / "sub"),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "a"},
    }


def test_prepare_data_defaults_path_to_the_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "data.yaml").write_text("train: t\nval: v\nnames: [a]\n", encoding="utf-8")
    settings = _settings(tmp_path, TRAINYARD_DATASET_URI=folder.as_uri())

    written = Path(prepare_data(settings, tmp_path))

    assert yaml.safe_load(written.read_text(encoding="utf-8"))["path"] == str(folder)


def test_prepare_data_for_classify_is_the_folder(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, TRAINYARD_DATASET_URI=tmp_path.as_uri(), TRAINYARD_TASK="classify"
    )
    assert prepare_data(settings, tmp_path) == str(tmp_path)


def test_prepare_data_needs_data_yaml(tmp_path: Path) -> None:
    settings = _settings(tmp_path, TRAINYARD_DATASET_URI=tmp_path.as_uri())
    with pytest.raises(FileNotFoundError, match=r"data\.yaml"):
        prepare_data(settings, tmp_path)


def test_train_args_merge_hyperparameters_under_the_contract(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        TRAINYARD_GPUS="2",
        TRAINYARD_IMGSZ="320",
        TRAINYARD_BATCH="8",
        TRAINYARD_HYPERPARAMETERS='{"lr0": 0.02, "amp": true, "workers": 0}',
    )

    args = train_args(settings, "/x/data.yaml")

    assert args == {
        "workers": 0,
        "amp": True,
        "lr0": 0.02,
        "data": "/x/data.yaml",
        "epochs": 3,
        "imgsz": 320,
        "batch": 8,
        "device": "0,1",
        "project": str(tmp_path / "out"),
        "name": "run",
        "exist_ok": True,
        "plots": False,
    }


def test_train_args_default_to_no_amp_and_few_workers(tmp_path: Path) -> None:
    args = train_args(_settings(tmp_path), "d")
    assert (args["amp"], args["workers"], args["device"]) == (False, 2, "cpu")


def test_prepare_environment_points_ultralytics_at_the_output_dir(tmp_path: Path) -> None:
    env = {"ULTRALYTICS_API_KEY": "k", "HOME": "/home/x"}

    private = ENVIRONMENT.prepare(tmp_path / "out", env)

    assert private == tmp_path / "out" / ".trainer"
    assert private.is_dir()
    assert env == {
        "HOME": "/home/x",
        "YOLO_CONFIG_DIR": str(private),
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "MPLCONFIGDIR": str(private / "matplotlib"),
    }
