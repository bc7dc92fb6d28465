from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_image_dataset, make_text_dataset

from trainer.dataset import DatasetError, detect_task, load_data


def test_image_folder(tmp_path: Path) -> None:
    root = make_image_dataset(tmp_path, n_train=6, n_val=4)
    (root / "train" / "red" / "notes.txt").write_text("not an image")

    data = load_data(root, None)

    assert data.task == "image-classification"
    assert data.classes == ["blue", "red"]
    assert len(data.train) == 6
    assert len(data.val) == 4
    assert all(path.endswith(".png") for path, _ in data.train)
    assert {label for _, label in data.val} == {0, 1}


def test_image_folder_refuses_a_val_class_unknown_to_training(tmp_path: Path) -> None:
    root = make_image_dataset(tmp_path, n_train=4, n_val=2)
    (root / "val" / "green").mkdir()
    with pytest.raises(DatasetError, match="class 'green' is not a class of the training set"):
        load_data(root, "image-classification")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_text_files(tmp_path: Path, fmt: str) -> None:
    root = make_text_dataset(tmp_path, fmt=fmt, n_train=6, n_val=4)

    data = load_data(root, None)

    assert data.task == "text-classification"
    assert data.classes == ["neg", "pos"]
    assert len(data.train) == 6
    assert data.train[0][0].startswith("a ")
    assert [label for _, label in data.val] == [1, 0, 1, 0]


def test_text_labels_may_be_numbers(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"text": "x", "label": 1}) + "\n" + json.dumps({"text": "y", "label": 0}) + "\n"
    )
    (tmp_path / "val.jsonl").write_text(json.dumps({"text": "z", "label": 1}) + "\n")
    data = load_data(tmp_path, "text-classification")
    assert data.classes == ["0", "1"]
    assert data.val == [("z", 1)]


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ('{"text": "x"}\n', "line 1: field 'label' must be a class name"),
        ('{"text": 3, "label": "a"}\n', "line 1: field 'text' must be a string"),
        ('{"text": "x", "label": "a"}\nnot json\n', "line 2: invalid JSON"),
        ("\n", "has no records"),
    ],
)
def test_malformed_text_records_are_named(tmp_path: Path, train: str, match: str) -> None:
    (tmp_path / "train.jsonl").write_text(train)
    (tmp_path / "val.jsonl").write_text('{"text": "x", "label": "a"}\n')
    with pytest.raises(DatasetError, match=match):
        load_data(tmp_path, None)


def test_csv_needs_the_columns(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("sentence,label\nx,a\n")
    (tmp_path / "val.csv").write_text("text,label\nx,a\n")
    with pytest.raises(DatasetError, match="header lacks text"):
        load_data(tmp_path, None)


def test_missing_pieces_are_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_data(tmp_path / "nope", None)
    with pytest.raises(FileNotFoundError, match=r"neither train\.jsonl/train\.csv"):
        detect_task(tmp_path)
    (tmp_path / "train.csv").write_text("text,label\nx,a\n")
    with pytest.raises(FileNotFoundError, match=r"no val\.csv"):
        load_data(tmp_path, None)
    with pytest.raises(FileNotFoundError, match="no train/ folder"):
        load_data(tmp_path, "image-classification")
