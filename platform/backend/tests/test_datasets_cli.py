"""`trainyard datasets upload` and `show` against a live API with local storage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from trainyard.cli.app import app
from trainyard.cli.settings import get_cli_settings
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes


@pytest.fixture
def cli(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TRAINYARD_API_URL", live_server.http_url)
    get_cli_settings.cache_clear()
    yield CliRunner()
    get_cli_settings.cache_clear()


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_uploading_a_folder_zips_it_and_prints_the_validation_summary(
    cli: CliRunner, tmp_path: Path
) -> None:
    make_shapes(tmp_path / "shapes", ShapesSpec(train_images=4, val_images=2))

    uploaded = cli.invoke(app, ["datasets", "upload", str(tmp_path / "shapes")])

    assert uploaded.exit_code == 0, uploaded.output
    assert "dataset shapes (yolo) valid" in uploaded.output
    assert "train" in uploaded.output

    shown = cli.invoke(app, ["datasets", "show", "shapes", "--output", "json"])

    assert shown.exit_code == 0, shown.output
    dataset = json.loads(shown.output)
    assert dataset["status"] == "valid"
    assert dataset["report"]["counts"]["train"]["images"] == 4


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_uploading_an_invalid_dataset_exits_1_and_lists_the_errors(
    cli: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "pets"
    (folder / "train" / "cat").mkdir(parents=True)
    (folder / "train" / "cat" / "1.png").write_bytes(b"not an image")

    result = cli.invoke(
        app, ["datasets", "upload", str(folder), "--format", "imagefolder", "--name", "pets"]
    )

    assert result.exit_code == 1, result.output
    assert "invalid" in result.output
    assert "train/cat/1.png is not a readable image" in result.output


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_make_classification_writes_an_imagefolder_dataset_the_platform_finds_valid(
    cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "classes"

    made = cli.invoke(
        app,
        ["datasets", "make-classification", "--out", str(out), "--train-per-class", "3"],
    )

    assert made.exit_code == 0, made.output
    assert "wrote 9 train + 12 val images of 3 classes" in made.output
    assert sorted(p.name for p in (out / "train").iterdir()) == ["circle", "square", "triangle"]
    shown = cli.invoke(app, ["datasets", "show", "shape-classes", "--output", "json"])
    dataset = json.loads(shown.output)
    assert (dataset["format"], dataset["status"]) == ("imagefolder", "valid")
    assert dataset["report"]["class_histogram"] == {"circle": 3, "square": 3, "triangle": 3}
    # Deterministic: the same seed gives the same bytes.
    again = tmp_path / "again"
    args = ["--out", str(again), "--train-per-class", "3", "--no-register"]
    cli.invoke(app, ["datasets", "make-classification", *args])
    first = out / "val" / "square" / "val_00001.png"
    assert first.read_bytes() == (again / "val" / "square" / "val_00001.png").read_bytes()


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_make_text_writes_a_text_classification_dataset_the_platform_finds_valid(
    cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "topics"

    made = cli.invoke(app, ["datasets", "make-text", "--out", str(out), "--val-per-label", "2"])

    assert made.exit_code == 0, made.output
    assert "wrote 120 train + 6 val samples of 3 labels (sports, weather, food)" in made.output
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"text", "label"}
    shown = cli.invoke(app, ["datasets", "show", "topics", "--output", "json"])
    dataset = json.loads(shown.output)
    assert (dataset["format"], dataset["status"]) == ("text", "valid")
    assert dataset["report"]["counts"]["val"]["samples"] == 6
    assert dataset["report"]["class_histogram"] == {"sports": 40, "weather": 40, "food": 40}


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_a_broken_text_dataset_is_reported_line_by_line(cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        '{"text": "great", "label": "pos"}\n'
        "not json\n"
        '{"text": "", "label": "neg"}\n'
        '{"text": "awful", "label": "neg"}\n'
    )
    (folder / "val.csv").write_text('text,label\n"fine",pos\n"meh",neutral\n')

    result = cli.invoke(
        app, ["datasets", "upload", str(folder), "--format", "text", "--name", "reviews"]
    )

    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "train.jsonl:2: not JSON" in output
    assert "train.jsonl:3: 'text' is missing or empty" in output
    assert "val has labels train never shows: neutral" in output
