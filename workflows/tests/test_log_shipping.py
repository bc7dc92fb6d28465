"""The watch copies the trainer's newest log lines onto the job's timeline (`log` events, the
web UI's log tail): each line once, also the last ones when the trainer exits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from trainyard_workflows.activities.log_shipping import LogShipping, new_lines
from trainyard_workflows.activities.schemas import EXITED, WatchTrainerInput
from trainyard_workflows.activities.training_activities import TrainingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.launchers import AttemptHandle, LaunchRequest
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.settings import WorkerSettings

TRAINER = """\
#!{python}
import time
for number in range(8):
    print(f"epoch {{number}}", flush=True)
    time.sleep(0.3)
"""


@pytest.mark.parametrize(
    ("shipped", "tail", "fresh"),
    [
        ([], ["a", "b"], ["a", "b"]),
        (["a", "b"], ["a", "b", "c"], ["c"]),
        (["a", "b", "c"], ["b", "c", "d", "e"], ["d", "e"]),  # the tail moved on
        (["a", "b"], ["a", "b"], []),
        (["x", "y"], ["p", "q"], ["p", "q"]),  # nothing in common: all of it is new
    ],
)
def test_only_lines_after_what_was_shipped_are_new(
    shipped: list[str], tail: list[str], fresh: list[str]
) -> None:
    assert new_lines(shipped, tail) == fresh


class Backend:
    def __init__(self, done: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.done = done
        self.liveness_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/liveness"):
            self.liveness_requests += 1
            state = "SUCCEEDED" if self.done else "RUNNING"
            liveness = {"state": state, "attempt": 1, "last_heartbeat_at": None, "done": self.done}
            return httpx.Response(200, json=liveness)
        if request.url.path.endswith("/events"):
            self.events.append(json.loads(request.content))
            return httpx.Response(201, json={"seq": len(self.events)})
        return httpx.Response(404, json={"detail": "not here"})


async def launch_fake_trainer(tmp_path: Path) -> tuple[SubprocessLauncher, AttemptHandle]:
    """Start a fake trainer printing 8 epochs, 0.3 s apart."""
    executable = tmp_path / "trainers" / "fake" / ".venv" / "bin" / "trainyard-trainer"
    executable.parent.mkdir(parents=True)
    executable.write_text(TRAINER.format(python=sys.executable))
    executable.chmod(0o755)
    launcher = SubprocessLauncher(tmp_path / "trainers")
    output_dir = tmp_path / "attempt-1"
    handle = await launcher.launch(
        LaunchRequest(
            job_id="job_ab12",
            attempt=1,
            framework="fake",
            output_dir=str(output_dir),
            env={"TRAINYARD_JOB_ID": "job_ab12", "TRAINYARD_OUTPUT_DIR": str(output_dir)},
        )
    )
    return launcher, handle


async def watch_fake_trainer(
    tmp_path: Path, backend: Backend, settings: WorkerSettings | None = None
) -> str:
    """Run the watch over a fake trainer printing 8 epochs; the watch's outcome."""
    launcher, handle = await launch_fake_trainer(tmp_path)
    settings = settings or WorkerSettings(watch_poll_s=0.1, log_ship_s=1.0, liveness_poll_s=0.5)
    async with BackendClient(
        "http://backend.test", "secret", transport=httpx.MockTransport(backend)
    ) as client:
        activities = TrainingActivities(client, launcher, settings)
        result = await ActivityEnvironment().run(
            activities.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=60)
        )
    return result.outcome


async def test_the_watch_ships_each_log_line_once_while_running_and_at_the_end(
    tmp_path: Path,
) -> None:
    backend = Backend()

    assert await watch_fake_trainer(tmp_path, backend) == EXITED

    shipped = [e["data"]["lines"] for e in backend.events if e["type"] == "log"]
    assert len(shipped) >= 2  # while it ran, and what was left at the end
    lines = [line for batch in shipped for line in batch]
    assert [line for line in lines if line.startswith("epoch")] == [f"epoch {n}" for n in range(8)]


async def test_nothing_is_shipped_once_the_job_ended(tmp_path: Path) -> None:
    # Its stream already closed with the terminal state: a later event would never be streamed.
    backend = Backend(done=True)

    assert await watch_fake_trainer(tmp_path, backend) == EXITED

    assert [e for e in backend.events if e["type"] == "log"] == []


async def test_the_watch_polls_the_process_often_but_asks_the_backend_seldom(
    tmp_path: Path,
) -> None:
    # 2.4 s of training, the process polled every 0.1 s: the backend is asked about the
    # trainer's heartbeats once a second (plus log shipping and the exit), not 24 times.
    backend = Backend()
    settings = WorkerSettings(watch_poll_s=0.1, log_ship_s=60, liveness_poll_s=1.0)

    assert await watch_fake_trainer(tmp_path, backend, settings) == EXITED

    assert 2 <= backend.liveness_requests <= 6


async def test_after_a_worker_restart_the_log_tail_goes_on_from_where_it_was(
    tmp_path: Path,
) -> None:
    # The watch's heartbeats carry what it shipped; Temporal hands the last of them to the
    # watch a restarted worker runs again, which ships what came meanwhile and nothing twice.
    backend = Backend()
    launcher, handle = await launch_fake_trainer(tmp_path)
    settings = WorkerSettings(watch_poll_s=0.1, log_ship_s=1.0, liveness_poll_s=0.5)
    details: list[tuple[object, ...]] = []
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *beat: details.append(beat)
    async with BackendClient(
        "http://backend.test", "secret", transport=httpx.MockTransport(backend)
    ) as client:
        dying = TrainingActivities(client, launcher, settings)
        watch = asyncio.ensure_future(
            first.run(dying.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=60))
        )
        await asyncio.sleep(1.4)  # one shipment, then the worker dies
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        shipped_before = len(backend.events)
        await asyncio.sleep(0.5)  # the trainer goes on writing meanwhile

        restarted = ActivityEnvironment()
        restarted.info = dataclasses.replace(restarted.info, heartbeat_details=details[-1])
        # A new worker's launcher: the trainer is no child of its own, found by its pid file.
        again = TrainingActivities(client, SubprocessLauncher(tmp_path / "trainers"), settings)
        result = await restarted.run(
            again.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=60)
        )

    assert result.outcome == EXITED
    assert shipped_before >= 1
    lines = [line for e in backend.events if e["type"] == "log" for line in e["data"]["lines"]]
    assert [line for line in lines if line.startswith("epoch")] == [f"epoch {n}" for n in range(8)]


def test_a_checkpoint_resumes_the_shipping_and_garbage_starts_afresh() -> None:
    logs = LogShipping()
    assert logs.fresh(["a", "b"]) == ["a", "b"]
    resumed = LogShipping.resume([logs.checkpoint()], last_at=1.0)
    assert resumed.fresh(["a", "b", "c"]) == ["c"]
    assert LogShipping.resume([], last_at=0.0).fresh(["a"]) == ["a"]
    assert LogShipping.resume(["nonsense", {"log_shipped": 3}], last_at=0.0).shipped == []
