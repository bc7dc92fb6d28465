"""Units: dataset layout, weights files, results.csv."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CLASSES, make_dataset

from trainer.dataset import scan_dataset
from trainer.model import WeightsError, build_model, load_weights, read_weights, resolve_model
from trainer.resume import results_csv
from trainer.settings import Hyperparameters


def test_scan_sorts_classes_and_keeps_images_only(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "set", n_train=2, n_val=1)
    (root / "train" / "circle" / "notes.txt").write_text("not an image")
    (root / "train" / "circle" / ".hidden.png").write_bytes(b"x")
    (root / "train" / ".cache").mkdir()
    (root / "train" / "square" / "sub").mkdir()
    (root / "train" / "square" / "train_0.png").rename(root / "train" / "square" / "sub" / "A.PNG")

    data = scan_dataset(root)

    assert data.classes == CLASSES
    assert len(data.train) == 6
    assert len(data.val) == 3
    assert {label for _, label in data.train} == {0, 1, 2}
    assert (str(root / "train" / "square" / "sub" / "A.PNG"), 1) in data.train
    assert all(not Path(path).name.startswith(".") for path, _ in data.train)


def test_results_csv_has_epoch_then_the_metrics() -> None:
    text = results_csv([{"epoch": 1, "val/top1": 50.0, "lr": 0.001}])
    assert text == (
        "epoch,train/loss,val/loss,val/top1,val/top5,lr,train/images_per_s\n1,,,50.0,,0.001,\n"
    )


def test_weights_files_of_other_trainers_load_with_their_wrappers(tmp_path: Path) -> None:
    import torch

    model, name = build_model("test_resnet", 3, Hyperparameters())
    assert name == "test_resnet"
    wrapped = tmp_path / "ckpt.pth"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3},
        wrapped,
    )

    state, architecture = read_weights(wrapped)

    assert architecture is None
    assert set(state) == set(model.state_dict())
    other, _ = build_model("test_resnet", 10, Hyperparameters())
    assert load_weights(other, state, str(wrapped)) == ["fc.bias", "fc.weight"]

    # As TRAINYARD_MODEL a plain state dict needs the architecture hyperparameter.
    with pytest.raises(WeightsError, match="set the 'architecture' hyperparameter"):
        resolve_model(str(wrapped), Hyperparameters())
    hp = Hyperparameters(architecture="test_resnet")
    assert resolve_model(wrapped.as_uri(), hp) == ("test_resnet", wrapped)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    model, _ = build_model("test_resnet", 3, Hyperparameters())
    other, _ = build_model("test_efficientnet", 3, Hyperparameters())
    with pytest.raises(WeightsError, match="do not fit"):
        load_weights(model, other.state_dict(), "other")


def test_unreadable_weights_are_named(tmp_path: Path) -> None:
    broken = tmp_path / "w.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=f"weights file {broken} is unreadable"):
        read_weights(broken)
