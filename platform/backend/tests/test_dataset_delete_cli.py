"""`trainyard datasets delete <name-or-id>` against a live API."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainyard.cli.app import app
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes

from .test_datasets_cli import cli  # noqa: F401  (the fixture)


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_deleting_a_dataset_by_name_removes_it(
    cli: CliRunner,  # noqa: F811
    tmp_path: Path,
) -> None:
    make_shapes(tmp_path / "shapes", ShapesSpec(train_images=2, val_images=1))
    assert cli.invoke(app, ["datasets", "upload", str(tmp_path / "shapes")]).exit_code == 0

    deleted = cli.invoke(app, ["datasets", "delete", "shapes"])

    assert deleted.exit_code == 0, deleted.output
    assert "deleted dataset shapes" in deleted.output
    missing = cli.invoke(app, ["datasets", "show", "shapes"])
    assert missing.exit_code != 0
    assert "does not exist" in missing.output
