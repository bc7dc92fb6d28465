"""An API outage is not the trainer's silence: the watch counts the heartbeat timeout only
while the backend answers, from its return on, so the trainer's retried callbacks get through
before the attempt is declared lost."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.testing import ActivityEnvironment

from trainyard_workflows.activities.schemas import EXITED, WatchTrainerInput
from trainyard_workflows.activities.training_activities import TrainingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.launchers import LaunchRequest
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.settings import WorkerSettings

TRAINER = "#!{python}\nimport time\ntime.sleep(3.5)\n"
TIMEOUT_S = 1.0


class Backend:
    """Answers liveness, but not from 0.5 s to 2.5 s (1.5 heartbeat timeouts); the trainer's
    heartbeats reach it only 0.5 s after it is back (its retries' backoff)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        at = time.monotonic() - self.started
        if 0.5 <= at < 2.5:
            raise httpx.ConnectError("connection refused", request=request)
        beat = 0.0 if at < 3.0 else at
        stamp = datetime.fromtimestamp(self.started + beat, UTC).isoformat()
        body = {"state": "RUNNING", "attempt": 1, "done": False, "last_heartbeat_at": stamp}
        return httpx.Response(200, json=body)


async def test_the_first_answer_after_an_outage_does_not_declare_the_attempt_lost(
    tmp_path: Path,
) -> None:
    executable = tmp_path / "trainers" / "fake" / ".venv" / "bin" / "trainyard-trainer"
    executable.parent.mkdir(parents=True)
    executable.write_text(TRAINER.format(python=sys.executable))
    executable.chmod(0o755)
    launcher = SubprocessLauncher(tmp_path / "trainers")
    handle = await launcher.launch(
        LaunchRequest(
            job_id="job_ab12", attempt=1, framework="fake", output_dir=str(tmp_path), env={}
        )
    )
    settings = WorkerSettings(watch_poll_s=0.05, log_ship_s=60, liveness_poll_s=0.1)
    async with BackendClient(
        "http://backend.test", "secret", retry_for_s=0.05, transport=httpx.MockTransport(Backend())
    ) as client:
        activities = TrainingActivities(client, launcher, settings)
        result = await ActivityEnvironment().run(
            activities.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=TIMEOUT_S)
        )

    assert (result.outcome, result.exit_code) == (EXITED, 0)
