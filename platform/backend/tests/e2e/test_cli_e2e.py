"""The `trainyard` CLI against the running embedded platform, as a user types it."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform, free_local_port
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .helpers import trainyard_executable

pytestmark = pytest.mark.xdist_group("e2e")


def _trainyard(api_url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINYARD_API_URL": api_url, "COLUMNS": "160"}
    return subprocess.run(
        [trainyard_executable(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_train_with_watch_follows_the_run_live_and_exits_zero_with_the_weights_path(
    platform: EmbeddedPlatform, shapes: GeneratedDataset
) -> None:
    result = _trainyard(
        platform.config.api_url,
        "train",
        "yolo11n.yaml",
        "--data",
        shapes.uri,
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--batch",
        "4",
        "workers=0",
        "--watch",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCEEDED" in result.stdout
    weights_lines = [line for line in result.stdout.splitlines() if line.startswith("weights:")]
    assert weights_lines
    assert Path(weights_lines[0].split(":", 1)[1].strip()).is_file()


def test_datasets_make_shapes_registers_a_dataset_jobs_can_name(
    platform: EmbeddedPlatform, api: httpx.Client, tmp_path: Path
) -> None:
    result = _trainyard(
        platform.config.api_url,
        "datasets",
        "make-shapes",
        "--out",
        str(tmp_path / "cli-shapes"),
        "--name",
        "cli-shapes",
        "--train-images",
        "4",
        "--val-images",
        "2",
        "--size",
        "64",
    )

    assert result.returncode == 0, result.stderr
    listed = _trainyard(platform.config.api_url, "datasets", "list", "--output", "json")
    names = [d["name"] for d in json.loads(listed.stdout)["items"]]
    assert "cli-shapes" in names


def test_jobs_json_output_is_machine_readable(platform: EmbeddedPlatform) -> None:
    result = _trainyard(platform.config.api_url, "jobs", "--output", "json")

    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert isinstance(page["items"], list)


def test_commands_say_clearly_when_the_platform_is_not_running() -> None:
    result = _trainyard(f"http://127.0.0.1:{free_local_port()}", "jobs")

    assert result.returncode == 2
    assert "not running" in result.stderr


def test_a_malformed_hyperparameter_is_refused_before_anything_is_sent(
    platform: EmbeddedPlatform,
) -> None:
    result = _trainyard(platform.config.api_url, "train", "yolo11n.yaml", "--data", "x", "oops")

    assert result.returncode == 2
    assert "key=value" in result.stderr


def test_demo_starts_the_platform_trains_live_and_stops_everything_it_started(
    tmp_path: Path, trainer_python: Path
) -> None:
    data_dir = tmp_path / "demo"
    ports = [str(free_local_port()) for _ in range(4)]

    result = _trainyard(
        f"http://127.0.0.1:{ports[0]}",
        "demo",
        "--data-dir",
        str(data_dir),
        "--epochs",
        "2",
        "--imgsz",
        "64",
        "--api-port",
        ports[0],
        "--temporal-port",
        ports[1],
        "--temporal-ui-port",
        ports[2],
        "--mlflow-port",
        ports[3],
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 2/2" in result.stdout
    assert "SUCCEEDED" in result.stdout
    assert "watch it in the browser" in result.stdout  # the web UI's job page, while it runs
    assert (data_dir / "temporal.db").is_file()
    # The demo waits for the workflow to close the MLflow run before stopping the platform.
    with closing(sqlite3.connect(data_dir / "mlflow.db")) as mlflow_db:
        statuses = [row[0] for row in mlflow_db.execute("SELECT status FROM runs")]
        versions = mlflow_db.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
    assert statuses == ["FINISHED"]
    assert versions == 1
    assert (data_dir / "datasets" / "shapes" / "data.yaml").is_file()
    for port in ports:
        with socket.socket() as sock:
            # Bindable again (TIME_WAIT aside): nothing listens, everything was stopped.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", int(port)))
