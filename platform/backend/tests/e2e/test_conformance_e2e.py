"""Every trainer, end to end through the embedded platform: a job submitted over the API whose
trainer is SIGKILLed after its epoch-2 checkpoint resumes in attempt 2 and SUCCEEDS with every
epoch trained once (timeline, results.csv and MLflow run). The contract itself, trainer by
trainer: tests/conformance/."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform

from ..conformance.trainers import TRAINERS, TrainerCase
from .helpers import resumed_to_success, submit

pytestmark = pytest.mark.xdist_group("e2e")

# Room after the epoch-2 checkpoint, so the kill lands before a fast trainer finishes.
EPOCHS = 6


@pytest.mark.parametrize("case", TRAINERS, ids=[case.id for case in TRAINERS])
def test_a_killed_trainer_resumes_and_the_job_succeeds_with_every_epoch_once(
    api: httpx.Client, platform: EmbeddedPlatform, case: TrainerCase, tmp_path: Path
) -> None:
    uri = case.make_dataset(tmp_path / "dataset").resolve().as_uri()
    body = case.job_body(uri, EPOCHS)
    job = submit(api, body.pop("dataset"), **body)

    final, retried, events = resumed_to_success(
        api, platform, job["id"], signal.SIGKILL, EPOCHS, case.epoch_metric
    )

    assert retried["data"]["interrupted"] is False
    assert "attempt 1 ended without a result (trainer exited with code -9" in retried["message"]
    [restored] = [e for e in events if e["type"] == "checkpoint_restored"]
    assert restored["data"]["path"] == retried["data"]["resume_from"]
    assert final["framework"] == case.framework
