"""The trainer contract (docs/trainer-contract.md), held against every trainer as a black box.

Each trainer runs as the platform runs it — the environment `trainer_env` builds, launched and
stopped by the `SubprocessLauncher` — and reports to a real backend (a uvicorn server on the
embedded tier) with a token the backend issued for the job's attempt. What a trainer must do
is read back from the job as any client sees it: its timeline, state and result.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainyard_workflows.activities.trainer_env import trainer_env
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.internal_api import Checkpoint, LatestCheckpoint
from trainyard_workflows.launchers import LaunchRequest
from trainyard_workflows.launchers.base import AttemptHandle, AttemptStatus
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher

from ..conftest import LiveServer
from ..support import INTERNAL_HEADERS, events, get_job, move, start_attempt, submit
from .trainers import REPO, TRAINERS, TrainerCase

pytestmark = [
    pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True),
    pytest.mark.parametrize("case", TRAINERS, ids=[case.id for case in TRAINERS]),
]

_RUN_TIMEOUT_S = 240


@pytest.fixture
def launcher(case: TrainerCase) -> SubprocessLauncher:
    if not case.executable.exists():
        pytest.fail(
            f"the {case.framework} trainer is not installed ({case.executable}): "
            "run `make trainers`"
        )
    return SubprocessLauncher(REPO / "trainers")


@dataclass
class Attempt:
    """A job of `case`, moved to STARTING, with attempt `number`'s token: what the worker has
    before it launches a trainer."""

    api: httpx.AsyncClient
    server: LiveServer
    launcher: SubprocessLauncher
    case: TrainerCase
    job: dict[str, Any]
    token: str
    output_dir: Path
    number: int = 1

    def env(
        self, resume_from: Checkpoint | None = None, /, **changes: str | None
    ) -> dict[str, str]:
        job = self.job
        training = TrainingInput(
            job_id=job["id"],
            framework=job["framework"],
            model=job["model"],
            dataset_uri=job["dataset_uri"],
            task=job["task"],
            epochs=job["epochs"],
            imgsz=job["imgsz"],
            batch=job["batch"],
            gpus=job["gpus"],
            hyperparameters=job["hyperparameters"],
        )
        env = trainer_env(
            training,
            attempt=self.number,
            callback_url=self.server.http_url,
            callback_token=self.token,
            output_dir=self.output_dir,
            keepalive_s=1,
            resume_from=resume_from,
        )
        for name, value in changes.items():
            if value is None:
                env.pop(name)
            else:
                env[name] = value
        return env

    async def launch(self, env: dict[str, str]) -> AttemptHandle:
        request = LaunchRequest(
            job_id=self.job["id"],
            attempt=self.number,
            framework=self.case.framework,
            output_dir=str(self.output_dir),
            env=env,
            gpus=0,
        )
        return await self.launcher.launch(request)

    async def finished(self, handle: AttemptHandle) -> AttemptStatus:
        deadline = time.monotonic() + _RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            status = await self.launcher.status(handle)
            if not status.running:
                return status
            await asyncio.sleep(0.2)
        await self.launcher.stop(handle, 5)
        tail = "\n".join(await self.launcher.log_tail(handle, 30))
        pytest.fail(f"the {self.case.id} trainer did not finish in {_RUN_TIMEOUT_S}s:\n{tail}")

    async def log(self, handle: AttemptHandle) -> str:
        return "\n".join(await self.launcher.log_tail(handle, 40))

    async def timeline(self) -> list[dict[str, Any]]:
        """What the trainer sent (the state changes it caused left out)."""
        return [
            e
            for e in await events(self.api, self.job["id"])
            if e["source"] == "trainer" and e["type"] != "state"
        ]


async def new_attempt(
    api: httpx.AsyncClient,
    server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    dataset: Path,
    tmp_path: Path,
    epochs: int,
) -> Attempt:
    job = await submit(api, case.job_body(file_uri(dataset), epochs))
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    output_dir = tmp_path / "attempt-1"
    token = await start_attempt(api, job["id"], output_dir=str(output_dir))
    return Attempt(api, server, launcher, case, job, token, output_dir)


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.http_url, timeout=30) as client:
        yield client


@pytest.fixture
def dataset(case: TrainerCase, tmp_path: Path) -> Path:
    return case.make_dataset(tmp_path / "dataset")


# Blocking file checks, kept out of the async tests' bodies.
def exists(path: str) -> bool:
    return Path(path).exists()


def file_hashes(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``folder``, by relative path."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def metric_epochs(timeline: list[dict[str, Any]]) -> list[int]:
    return [
        e["data"]["epoch"] for e in timeline if e["type"] == "heartbeat" and e["data"]["metrics"]
    ]


def epochs_in_results(path: Path) -> list[int]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return [int(float(row[0])) for row in rows[1:]]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRAINYARD_JOB_ID", None),
        ("TRAINYARD_EPOCHS", "many"),
        ("TRAINYARD_HYPERPARAMETERS", "["),
        ("TRAINYARD_RESUME_FROM", "run/last.pt"),  # not absolute: where would it be?
    ],
)
async def test_a_missing_or_malformed_variable_exits_2_naming_it_and_sends_nothing(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    dataset: Path,
    tmp_path: Path,
    variable: str,
    value: str | None,
) -> None:
    attempt = await new_attempt(api, live_server, launcher, case, dataset, tmp_path, epochs=1)

    handle = await attempt.launch(attempt.env(**{variable: value}))
    status = await attempt.finished(handle)

    log = await attempt.log(handle)
    assert status.exit_code == 2, log
    assert log.strip().splitlines()[-1].startswith(f"{variable}: "), log
    assert await attempt.timeline() == []


async def test_a_run_reports_every_epoch_its_checkpoints_and_a_done_with_results(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    dataset: Path,
    tmp_path: Path,
) -> None:
    attempt = await new_attempt(api, live_server, launcher, case, dataset, tmp_path, epochs=2)

    handle = await attempt.launch(attempt.env())
    status = await attempt.finished(handle)

    assert status.exit_code == 0, await attempt.log(handle)
    timeline = await attempt.timeline()
    assert timeline[0]["type"] == "trainer_started"
    assert timeline[0]["data"]["attempt"] == 1
    heartbeats = [e["data"] for e in timeline if e["type"] == "heartbeat"]
    assert heartbeats[0]["epoch"] == 0
    epochs = [beat["epoch"] for beat in heartbeats]
    assert epochs == sorted(epochs), "the epoch never goes back"
    assert {beat["epochs"] for beat in heartbeats} == {2}
    assert metric_epochs(timeline) == [1, 2]
    assert all(case.epoch_metric in beat["metrics"] for beat in heartbeats if beat["metrics"])
    # Every heartbeat carries the trainer's system metrics, stored as sent (a CPU run: no GPUs).
    assert all(beat["system"]["ram_bytes"] > 0 for beat in heartbeats)
    assert any("samples_per_s" in beat["system"] for beat in heartbeats)
    checkpoints = [e["data"] for e in timeline if e["type"] == "checkpoint_saved"]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    assert all(exists(c["path"]) for c in checkpoints)
    done = timeline[-1]
    assert (done["type"], done["data"]["status"]) == ("done", "succeeded")
    assert done["data"]["metrics"]
    artifacts = done["data"]["artifacts"]
    assert {"weights", "last", "results"} <= set(artifacts)
    assert all(exists(path) for path in artifacts.values())
    assert epochs_in_results(Path(artifacts["results"])) == [1, 2]
    job = await get_job(api, attempt.job["id"])
    assert job["state"] == "SUCCEEDED"
    assert job["progress"]["epoch"] == 2
    assert job["result"]["artifacts"] == artifacts


async def test_sigterm_stops_the_run_at_a_batch_boundary_with_done_cancelled_and_143(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    dataset: Path,
    tmp_path: Path,
) -> None:
    attempt = await new_attempt(api, live_server, launcher, case, dataset, tmp_path, epochs=500)
    handle = await attempt.launch(attempt.env())
    deadline = time.monotonic() + _RUN_TIMEOUT_S
    while not metric_epochs(await attempt.timeline()):
        assert time.monotonic() < deadline, await attempt.log(handle)
        assert (await launcher.status(handle)).running, await attempt.log(handle)
        await asyncio.sleep(0.2)
    # As the platform cancels: the cancel request first, then SIGTERM to the trainer.
    assert (await api.post(f"/v1/jobs/{attempt.job['id']}/cancel")).status_code == 202

    status = await launcher.stop(handle, grace_s=60)

    assert status.exit_code == 143, await attempt.log(handle)
    done = (await attempt.timeline())[-1]
    assert (done["type"], done["data"]["status"]) == ("done", "cancelled")
    assert (await get_job(api, attempt.job["id"]))["state"] == "CANCELLED"


async def test_a_broken_dataset_fails_the_run_with_a_reason(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    tmp_path: Path,
) -> None:
    broken = case.make_broken_dataset(tmp_path / "broken")
    attempt = await new_attempt(api, live_server, launcher, case, broken, tmp_path, epochs=2)

    handle = await attempt.launch(attempt.env())
    status = await attempt.finished(handle)

    assert status.exit_code == 1, await attempt.log(handle)
    done = (await attempt.timeline())[-1]
    assert (done["type"], done["data"]["status"]) == ("done", "failed")
    assert len(done["data"]["reason"]) > 10
    job = await get_job(api, attempt.job["id"])
    assert (job["state"], job["reason"]) == ("FAILED", done["data"]["reason"])


async def test_a_killed_run_resumes_from_its_checkpoint_with_every_epoch_once(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    dataset: Path,
    tmp_path: Path,
) -> None:
    epochs = 4
    first = await new_attempt(api, live_server, launcher, case, dataset, tmp_path, epochs=epochs)
    handle = await first.launch(first.env())
    deadline = time.monotonic() + _RUN_TIMEOUT_S
    while True:
        saved = [e["data"] for e in await first.timeline() if e["type"] == "checkpoint_saved"]
        if saved and saved[-1]["epoch"] >= 2:
            break
        assert time.monotonic() < deadline, await first.log(handle)
        assert (await launcher.status(handle)).running, await first.log(handle)
        await asyncio.sleep(0.05)
    os.kill(handle.pid, signal.SIGKILL)  # the OOM killer, a lost node
    assert (await first.finished(handle)).exit_code == -9
    checkpoint = [e["data"] for e in await first.timeline() if e["type"] == "checkpoint_saved"][-1]
    before = metric_epochs(await first.timeline())
    assert all(e["type"] != "done" for e in await first.timeline())
    left_behind = file_hashes(first.output_dir)

    token = await start_attempt(api, first.job["id"], 2, output_dir=str(tmp_path / "attempt-2"))
    second = Attempt(
        api, live_server, launcher, case, first.job, token, tmp_path / "attempt-2", number=2
    )
    # What the worker hands the new attempt: the job's newest accepted checkpoint, with the
    # size and hash its trainer announced.
    latest = await api.get(
        f"/internal/v1/jobs/{first.job['id']}/checkpoint", headers=INTERNAL_HEADERS
    )
    resume = LatestCheckpoint.model_validate_json(latest.content).checkpoint
    assert resume is not None
    assert (resume.path, resume.epoch, resume.size) == (
        checkpoint["path"],
        checkpoint["epoch"],
        checkpoint["size"],
    )
    handle = await second.launch(second.env(resume))
    status = await second.finished(handle)

    assert status.exit_code == 0, await second.log(handle)
    timeline = await second.timeline()
    resumed_from = (
        len(timeline)
        - next(i for i, e in enumerate(reversed(timeline)) if e["type"] == "trainer_started")
        - 1
    )
    resumed = timeline[resumed_from:]
    assert resumed[0]["data"]["resume_from"] == checkpoint["path"]
    assert (resumed[1]["type"], resumed[1]["data"]) == (
        "checkpoint_restored",
        {"path": checkpoint["path"], "epoch": checkpoint["epoch"]},
    )
    heartbeats = [e["data"] for e in resumed if e["type"] == "heartbeat"]
    assert heartbeats[0]["epoch"] == checkpoint["epoch"], "progress goes on from the checkpoint"
    assert [b["epoch"] for b in heartbeats] == sorted(b["epoch"] for b in heartbeats)
    assert {b["epochs"] for b in heartbeats} == {epochs}
    after = metric_epochs(resumed)
    assert after == list(range(checkpoint["epoch"], epochs + 1)) or after == list(
        range(checkpoint["epoch"] + 1, epochs + 1)
    ), "the new attempt trains only the epochs after the checkpoint"
    assert sorted(set(before) | set(after)) == list(range(1, epochs + 1))
    saved = [e["data"] for e in resumed if e["type"] == "checkpoint_saved"]
    assert [c["epoch"] for c in saved] == list(range(checkpoint["epoch"] + 1, epochs + 1))
    assert all(Path(c["path"]).is_relative_to(second.output_dir) for c in saved)
    done = timeline[-1]
    assert (done["type"], done["data"]["status"]) == ("done", "succeeded")
    artifacts = done["data"]["artifacts"]
    assert {"weights", "last", "results", "run_dir"} <= set(artifacts)
    for path in artifacts.values():
        assert Path(path).is_relative_to(second.output_dir)
        assert exists(path)
    # The run folder holds the whole history: the earlier attempt's rows, then the new epochs.
    assert epochs_in_results(Path(artifacts["results"])) == list(range(1, epochs + 1))
    assert file_hashes(first.output_dir) == left_behind, "the killed attempt's folder is kept"
    assert (await get_job(api, first.job["id"]))["state"] == "SUCCEEDED"


async def test_a_checkpoint_that_is_not_there_fails_the_attempt_naming_it(
    api: httpx.AsyncClient,
    live_server: LiveServer,
    launcher: SubprocessLauncher,
    case: TrainerCase,
    dataset: Path,
    tmp_path: Path,
) -> None:
    attempt = await new_attempt(api, live_server, launcher, case, dataset, tmp_path, epochs=2)
    missing = str(tmp_path / "gone" / "checkpoint")

    gone = Checkpoint(path=missing, epoch=1, attempt=1, seq=1, size=1, sha256="0" * 64)
    handle = await attempt.launch(attempt.env(gone))
    status = await attempt.finished(handle)

    assert status.exit_code == 1, await attempt.log(handle)
    timeline = await attempt.timeline()
    assert [e["type"] for e in timeline] == ["trainer_started", "done"], (
        "no progress is claimed without a checkpoint"
    )
    assert timeline[-1]["data"]["status"] == "failed"
    assert timeline[-1]["data"]["reason"] == (
        f"ResumeError: checkpoint {missing} (TRAINYARD_RESUME_FROM) not found"
    )
