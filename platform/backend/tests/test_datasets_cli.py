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
