"""Running the trainer under test (``python -m trainer`` of the suite's own environment) as the
platform does: a process with a clean environment that names the contract's variables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

TOKEN = "test-token-secret"
JOB_ID = "job_test"


def contract_env(
    server_url: str,
    dataset: Path,
    output_dir: Path,
    home: Path,
    *,
    drop: tuple[str, ...] = (),
) -> dict[str, str]:
    """A clean environment for the trainer process: this one without ``TRAINYARD_*``,
    ``PYTEST_*``, ``AWS_*`` and the ``drop`` prefixes (the framework's own settings), a private
    HOME, and the contract's variables every trainer reads (two epochs on CPU, keep-alives every
    second); the trainer's suite adds its model, task, image size, batch and hyperparameters."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TRAINYARD_", "PYTEST_", "AWS_", *drop))
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONUNBUFFERED="1",
        TRAINYARD_JOB_ID=JOB_ID,
        TRAINYARD_ATTEMPT="1",
        TRAINYARD_CALLBACK_URL=server_url,
        TRAINYARD_CALLBACK_TOKEN=TOKEN,
        TRAINYARD_DATASET_URI=dataset.resolve().as_uri(),
        TRAINYARD_OUTPUT_DIR=str(output_dir),
        TRAINYARD_EPOCHS="2",
        TRAINYARD_GPUS="0",
        TRAINYARD_KEEPALIVE_S="1",
    )
    return env


def start_trainer(env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``python -m trainer`` in the background, its output (stdout and stderr) in one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "trainer"],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_trainer(
    env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m trainer`` to its end (at most ``timeout`` seconds)."""
    return subprocess.run(
        [sys.executable, "-m", "trainer"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
