"""`trainyard projects quota` (read, `--set`) and `trainyard train --priority` against a live
API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from trainyard.cli.app import app
from trainyard.cli.quota_commands import BadQuotaSetting, merged_quota
from trainyard.cli.settings import get_cli_settings

UNLIMITED = {"gpus": None, "runs": None, "gpu_hours_per_month": None, "max_priority": "high"}


@pytest.fixture
def cli(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TRAINYARD_API_URL", live_server.http_url)
    get_cli_settings.cache_clear()
    yield CliRunner()
    get_cli_settings.cache_clear()


def test_set_changes_only_the_named_limits_and_none_lifts_one() -> None:
    current = {**UNLIMITED, "runs": 4}

    merged = merged_quota(current, ["gpus=2", "gpu-hours=12.5", "runs=none", "max-priority=low"])

    assert merged == {"gpus": 2, "runs": None, "gpu_hours_per_month": 12.5, "max_priority": "low"}
    for bad in ("cpus=2", "gpus", "gpus=two", "max-priority=asap"):
        with pytest.raises(BadQuotaSetting):
            merged_quota(current, [bad])


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_quota_shows_usage_and_a_platform_admin_sets_it(cli: CliRunner) -> None:
    shown = cli.invoke(app, ["projects", "quota"])
    changed = cli.invoke(app, ["projects", "quota", "--set", "gpus=2", "gpu-hours=100"])
    read = cli.invoke(app, ["projects", "quota", "-o", "json"])
    without_set = cli.invoke(app, ["projects", "quota", "gpus=3"])

    assert shown.exit_code == 0, shown.output
    assert "GPU-hours this month" in shown.output
    assert "no limit" in shown.output
    assert changed.exit_code == 0, changed.output
    assert json.loads(read.output)["quota"] == {
        **UNLIMITED,
        "gpus": 2,
        "gpu_hours_per_month": 100.0,
    }
    assert without_set.exit_code == 2
    assert "--set" in without_set.output


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
def test_train_submits_with_the_priority_asked_for(cli: CliRunner, dataset_dir: Path) -> None:
    cli.invoke(app, ["projects", "quota", "--set", "max-priority=normal"])

    submitted = cli.invoke(
        app, ["train", "yolo11n.yaml", "--data", dataset_dir.as_uri(), "--priority", "high"]
    )
    listed = cli.invoke(app, ["jobs", "-o", "json"])

    assert submitted.exit_code == 0, submitted.output
    jobs = json.loads(listed.output)
    assert [job["priority"] for job in jobs["items"]] == [
        "high"
    ]  # a platform admin: capped at urgent
