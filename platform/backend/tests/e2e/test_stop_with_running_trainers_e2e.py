"""Stopping the embedded platform while a job trains: no trainer process is left behind (it
would hold its GPU and CPU with nobody watching it), and the next start resumes the job from
its newest checkpoint, as an interruption rather than a failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedConfig, EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .helpers import (
    check_resumed_to_success,
    checkpoint_of_epoch,
    pid_exists,
    states_of,
    submit,
    trainer_pid,
)

pytestmark = pytest.mark.xdist_group("e2e")

EPOCHS = 40


@pytest.fixture
def config(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> EmbeddedConfig:
    """A platform of its own (it is stopped mid-test), on ports kept across its restart."""
    return EmbeddedConfig.on_free_ports(
        tmp_path / "data",
        extra_env={
            "TRAINYARD_HEARTBEAT_TIMEOUT_S": "60",
            "TRAINYARD_STOP_GRACE_S": "5",
            "TRAINYARD_DATASET_ROOTS": json.dumps([str(tmp_path_factory.getbasetemp())]),
        },
    )


@pytest.fixture
def started(config: EmbeddedConfig) -> Iterator[list[EmbeddedPlatform]]:
    """The platforms the test starts, each stopped at the end (stopping twice is harmless)."""
    platforms: list[EmbeddedPlatform] = []
    try:
        yield platforms
    finally:
        for platform in platforms:
            platform.stop()


def _start(config: EmbeddedConfig, started: list[EmbeddedPlatform]) -> EmbeddedPlatform:
    platform = EmbeddedPlatform(config)
    started.append(platform)
    platform.start()
    return platform


def test_stopping_the_platform_stops_its_trainers_and_the_next_start_resumes_the_job(
    config: EmbeddedConfig,
    started: list[EmbeddedPlatform],
    shapes: GeneratedDataset,
    trainer_python: Path,
) -> None:
    first = _start(config, started)
    with httpx.Client(base_url=config.api_url, timeout=30) as api:
        job = submit(api, shapes.uri, epochs=EPOCHS)
        checkpoint_of_epoch(api, job["id"], 2)
        pid = trainer_pid(api, job["id"])
        assert pid_exists(pid)

        # What SIGTERM or Ctrl-C to `trainyard up` does (cli/embedded.py running_platform).
        first.stop()

        assert not pid_exists(pid), f"trainer pid {pid} outlived the platform"

        second = _start(config, started)
        _, retried, events = check_resumed_to_success(
            api, second, job["id"], EPOCHS, "train/box_loss"
        )
    assert retried["data"]["interrupted"] is True
    assert "CANCELLED" not in states_of(events)
