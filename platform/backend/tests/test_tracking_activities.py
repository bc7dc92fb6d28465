"""Tracking activities against the real backend app: an unreachable MLflow server only leaves
`tracking_warning`s (never fails a job); with a real MLflow server the sync loop writes to the
run only when there are new epoch metrics, each epoch once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from temporalio.testing import ActivityEnvironment

from trainyard.cli.embedded import free_local_port
from trainyard_testing.mlflow import mlflow_server
from trainyard_workflows.activities import tracking_activities
from trainyard_workflows.activities.tracking_activities import TrackingActivities
from trainyard_workflows.activities.tracking_schemas import (
    FinishTrackingInput,
    StartTrackingInput,
    SyncTrackingInput,
)
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.tracking import build_tracker
from trainyard_workflows.tracking.mlflow_tracker import MlflowTracker, SyncCursor

from .support import (
    INTERNAL_TOKEN,
    OUTPUT_DIR,
    callback,
    events,
    get_job,
    heartbeat,
    start_attempt,
    submit,
)

# A fresh SQLite store runs all of MLflow's migrations first: seconds idle, more under load.


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server, started as the embedded tier starts it."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as (_, url):
        yield url


class CountingTracker(MlflowTracker):
    """The real tracker, counting the requests the sync makes to the MLflow server."""

    def __init__(self, tracking_uri: str) -> None:
        super().__init__(tracking_uri)
        self.requests = 0
        self.cursor_reads = 0

    def sync_cursor(self, run_id: str) -> SyncCursor:
        self.requests += 1
        self.cursor_reads += 1
        return super().sync_cursor(run_id)

    def log_metrics(
        self, run_id: str, metrics: Sequence[Metric], synced: int | SyncCursor | None
    ) -> None:
        self.requests += 1
        super().log_metrics(run_id, metrics, synced)


@pytest.fixture
async def backend(app: FastAPI) -> AsyncIterator[BackendClient]:
    transport = httpx.ASGITransport(app=app)
    async with BackendClient(
        "http://trainyard.test", INTERNAL_TOKEN, transport=transport
    ) as client:
        yield client


def _activities(
    backend: BackendClient, tmp_path: Path, tracking_uri: str | None
) -> TrackingActivities:
    # Closing a run does not wait for a server that is not there (see the outage test below).
    settings = WorkerSettings(
        data_dir=tmp_path, mlflow_tracking_uri=tracking_uri, tracking_finish_wait_s=0
    )
    return TrackingActivities(backend, build_tracker(settings), settings)


async def test_an_unreachable_mlflow_server_leaves_a_warning_and_an_untracked_job(
    api: httpx.AsyncClient, backend: BackendClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    job = await submit(api, job_body)
    nobody = f"http://127.0.0.1:{free_local_port()}"
    activities = _activities(backend, tmp_path, nobody)

    run = await ActivityEnvironment().run(
        activities.start_tracking, StartTrackingInput(job["id"], 1)
    )
    finished = await ActivityEnvironment().run(
        activities.finish_tracking, FinishTrackingInput(job["id"], "abc123", "SUCCEEDED")
    )

    assert run is None
    assert finished.status is None
    assert finished.model_version is None
    assert finished.warnings >= 1
    warnings = [e for e in await events(api, job["id"]) if e["type"] == "tracking_warning"]
    assert warnings
    assert "could not create the MLflow run" in warnings[0]["message"]
    assert (await get_job(api, job["id"]))["tracking"] is None


async def test_without_a_tracking_uri_the_activities_do_nothing(
    api: httpx.AsyncClient, backend: BackendClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    job = await submit(api, job_body)
    activities = _activities(backend, tmp_path, None)

    run = await ActivityEnvironment().run(
        activities.start_tracking, StartTrackingInput(job["id"], 1)
    )
    finished = await ActivityEnvironment().run(
        activities.finish_tracking, FinishTrackingInput(job["id"], "abc123", "FAILED")
    )

    assert run is None
    assert finished.status is None
    assert finished.warnings == 0
    assert not [e for e in await events(api, job["id"]) if e["type"] == "tracking_warning"]


async def _until(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@dataclass
class TrackedJob:
    """A job with a started attempt and its MLflow run, tracked through `tracker`."""

    api: httpx.AsyncClient
    job_id: str
    token: str
    tracker: CountingTracker
    activities: TrackingActivities
    run_id: str
    mlflow: MlflowClient

    def steps(self) -> list[int]:
        """The epochs of `train/loss` on the run."""
        return sorted(m.step for m in self.mlflow.get_metric_history(self.run_id, "train/loss"))

    async def beat(self, epoch: int, loss: float | None = None) -> None:
        """A heartbeat of `epoch`, with a `train/loss` metric or as a keep-alive."""
        body = heartbeat(epoch) if loss is None else heartbeat(epoch, train__loss=loss)
        response = await callback(self.api, self.job_id, "heartbeat", self.token, body)
        assert response.status_code == 202, response.text

    @asynccontextmanager
    async def syncing(self) -> AsyncIterator[None]:
        """`sync_tracking` running for the `with` block."""
        environment = ActivityEnvironment()
        request = SyncTrackingInput(self.job_id, self.run_id)
        task = asyncio.create_task(environment.run(self.activities.sync_tracking, request))
        try:
            yield
        finally:
            environment.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def tracked_job(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    settings: WorkerSettings,
    tracker: CountingTracker,
    output_dir: str = OUTPUT_DIR,
) -> TrackedJob:
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"], output_dir=output_dir)
    activities = TrackingActivities(backend, tracker, settings)
    run = await ActivityEnvironment().run(
        activities.start_tracking, StartTrackingInput(job["id"], 1)
    )
    assert run is not None
    mlflow = MlflowClient(tracking_uri=tracker.tracking_uri)
    return TrackedJob(api, job["id"], token, tracker, activities, run.run_id, mlflow)


def _sync_settings(tmp_path: Path, mlflow_url: str) -> WorkerSettings:
    return WorkerSettings(data_dir=tmp_path, mlflow_tracking_uri=mlflow_url, tracking_sync_s=0.05)


async def test_the_sync_writes_to_mlflow_only_when_new_epoch_metrics_came_and_each_epoch_once(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    tmp_path: Path,
    mlflow_url: str,
) -> None:
    tracker = CountingTracker(mlflow_url)
    job = await tracked_job(api, backend, job_body, _sync_settings(tmp_path, mlflow_url), tracker)

    await job.beat(1, 0.9)
    async with job.syncing():
        await _until(lambda: asyncio.to_thread(lambda: job.steps() == [1]))
        quiet_from = tracker.requests
        for _ in range(10):  # keep-alives over ~20 rounds: nothing to log
            await job.beat(1)
            await asyncio.sleep(0.1)
        assert tracker.requests == quiet_from, "rounds without new metrics went to MLflow"

        await job.beat(2, 0.7)
        await _until(lambda: asyncio.to_thread(lambda: job.steps() == [1, 2]))
        # The cursor read in the first round is kept: a new epoch is one write.
        assert tracker.requests == quiet_from + 1

    # The last sync (finish_tracking's) starts from the run's own cursor: nothing twice.
    await job.beat(3, 0.5)
    await ActivityEnvironment().run(
        job.activities.finish_tracking, FinishTrackingInput(job.job_id, job.run_id, "FAILED")
    )
    assert await asyncio.to_thread(job.steps) == [1, 2, 3]


async def test_the_sync_logs_a_rounds_newest_system_metrics_once_and_idle_rounds_nothing(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    tmp_path: Path,
    mlflow_url: str,
) -> None:
    tracker = CountingTracker(mlflow_url)
    job = await tracked_job(api, backend, job_body, _sync_settings(tmp_path, mlflow_url), tracker)

    async def keepalive(cpu: float) -> None:
        body = {**heartbeat(1), "system": {"cpu_percent": cpu, "ram_bytes": 2**30}}
        response = await callback(api, job.job_id, "heartbeat", job.token, body)
        assert response.status_code == 202, response.text

    def cpu_points() -> list[float]:
        history = job.mlflow.get_metric_history(job.run_id, "system/cpu_percent")
        return [m.value for m in sorted(history, key=lambda m: m.step)]

    for cpu in (100.0, 200.0, 300.0):  # all before the first round
        await keepalive(cpu)
    async with job.syncing():
        await _until(lambda: asyncio.to_thread(lambda: cpu_points() == [300.0]))
        quiet_from = tracker.requests
        await asyncio.sleep(0.5)  # ~10 rounds with nothing new
        assert tracker.requests == quiet_from, "rounds without new heartbeats went to MLflow"
        await keepalive(400.0)
        await _until(lambda: asyncio.to_thread(lambda: cpu_points() == [300.0, 400.0]))
        assert tracker.requests == quiet_from + 1


async def test_artifacts_that_lead_outside_the_attempts_output_are_never_uploaded(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    tmp_path: Path,
    mlflow_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The names lie inside the attempt's folder (the backend accepts them), but a hostile
    # trainer made them symlinks: to a host file, and to a foreign folder inside a folder.
    output = tmp_path / "jobs" / "attempt-1"
    (output / "weights").mkdir(parents=True)
    (output / "weights" / "best.pt").symlink_to("/etc/passwd")
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "secret.txt").write_text("not the job's")
    (output / "results").mkdir()
    (output / "results" / "plots.png").write_bytes(b"png")
    (output / "results" / "more").symlink_to(foreign)
    tracker = CountingTracker(mlflow_url)
    job = await tracked_job(
        api, backend, job_body, _sync_settings(tmp_path, mlflow_url), tracker, str(output)
    )
    artifacts = {"weights": f"{output}/weights/best.pt", "results": f"{output}/results"}
    done = {"status": "succeeded", "artifacts": artifacts}
    assert (await callback(api, job.job_id, "done", job.token, done)).status_code == 202

    result = await ActivityEnvironment().run(
        job.activities.finish_tracking, FinishTrackingInput(job.job_id, job.run_id, "SUCCEEDED")
    )

    assert await asyncio.to_thread(job.mlflow.list_artifacts, job.run_id) == []
    assert result.model_version is None  # no weights, no model version
    # (The job has ended, so the warning goes to the worker's log, not the timeline.)
    assert "best.pt leads outside this attempt's output folder" in caplog.text


class FailingOnceTracker(CountingTracker):
    """Its first write fails as a write that timed out would (it may or may not have landed)."""

    def __init__(self, tracking_uri: str) -> None:
        super().__init__(tracking_uri)
        self.failed = False

    def log_metrics(
        self, run_id: str, metrics: Sequence[Metric], synced: int | SyncCursor | None
    ) -> None:
        super().log_metrics(run_id, metrics, synced)
        if not self.failed:
            self.failed = True
            raise TimeoutError("MLflow did not answer in time")


async def test_after_a_failed_write_the_sync_reads_the_runs_cursor_again(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    tmp_path: Path,
    mlflow_url: str,
) -> None:
    tracker = FailingOnceTracker(mlflow_url)
    job = await tracked_job(api, backend, job_body, _sync_settings(tmp_path, mlflow_url), tracker)

    await job.beat(1, 0.9)
    async with job.syncing():
        await _until(lambda: asyncio.to_thread(lambda: tracker.failed))
        await job.beat(2, 0.8)
        await _until(lambda: asyncio.to_thread(lambda: job.steps() == [1, 2]))

    assert tracker.cursor_reads == 2  # once to start, once after the failure
    warnings = [e for e in await events(api, job.job_id) if e["type"] == "tracking_warning"]
    assert len(warnings) == 1
    assert "could not sync metrics to MLflow" in warnings[0]["message"]


async def test_between_rounds_longer_than_its_heartbeat_timeout_the_sync_keeps_heartbeating(
    backend: BackendClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down: rounds every 60 s would outlast the 30 s heartbeat timeout without it.
    monkeypatch.setattr(tracking_activities, "_IDLE_HEARTBEAT_EVERY_S", 0.05)
    settings = WorkerSettings(data_dir=tmp_path, tracking_sync_s=60)
    activities = TrackingActivities(backend, None, settings)
    environment = ActivityEnvironment()
    beats: list[float] = []
    environment.on_heartbeat = lambda *details: beats.append(time.monotonic())
    syncing = asyncio.create_task(
        environment.run(activities.sync_tracking, SyncTrackingInput("job_ab12", "run"))
    )
    await asyncio.sleep(0.6)
    environment.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await syncing

    assert len(beats) >= 6
    assert max(b - a for a, b in itertools.pairwise(beats)) < 0.5


class SwitchableProxy:
    """A TCP relay to the real MLflow server that can be switched off (connections refused,
    open ones cut) and on again at the same address: the server as the worker sees it across
    a crash and the supervisor's restart."""

    def __init__(self, target: str) -> None:
        self._target_port = int(target.rsplit(":", 1)[1])
        self.port = free_local_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def on(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def off(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}


@pytest.fixture
async def mlflow_proxy(
    mlflow_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SwitchableProxy]:
    """The MLflow server behind a proxy the test switches off and on (on at first)."""
    # Refused connections fail at once (MLflow's client would retry for minutes by default).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    proxy = SwitchableProxy(mlflow_url)
    await proxy.on()
    yield proxy
    await proxy.off()


async def test_the_sync_rides_out_an_mlflow_outage_and_catches_up_when_it_returns(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    tmp_path: Path,
    mlflow_url: str,
    mlflow_proxy: SwitchableProxy,
) -> None:
    proxy = mlflow_proxy
    tracker = CountingTracker(proxy.url)
    job = await tracked_job(api, backend, job_body, _sync_settings(tmp_path, proxy.url), tracker)
    direct = MlflowClient(tracking_uri=mlflow_url)

    def steps() -> list[int]:
        return sorted(m.step for m in direct.get_metric_history(job.run_id, "train/loss"))

    async def warned() -> bool:
        return any(e["type"] == "tracking_warning" for e in await events(api, job.job_id))

    await job.beat(1, 0.9)
    async with job.syncing():
        await _until(lambda: asyncio.to_thread(lambda: steps() == [1]))
        await proxy.off()
        await job.beat(2, 0.8)
        await job.beat(3, 0.7)
        await _until(warned)  # the sync met the outage
        await asyncio.sleep(0.3)  # and kept going through a few more rounds of it
        await proxy.on()
        await _until(lambda: asyncio.to_thread(lambda: steps() == [1, 2, 3]))

    warnings = [e for e in await events(api, job.job_id) if e["type"] == "tracking_warning"]
    assert len(warnings) == 1
    assert "could not sync metrics to MLflow" in warnings[0]["message"]


async def test_closing_a_run_waits_for_an_mlflow_server_that_is_down_and_then_closes_it(
    api: httpx.AsyncClient,
    backend: BackendClient,
    job_body: dict[str, Any],
    tmp_path: Path,
    mlflow_url: str,
    mlflow_proxy: SwitchableProxy,
) -> None:
    proxy = mlflow_proxy
    tracker = CountingTracker(proxy.url)
    job = await tracked_job(api, backend, job_body, _sync_settings(tmp_path, proxy.url), tracker)
    await job.beat(1, 0.9)
    await proxy.off()

    finishing = asyncio.create_task(
        ActivityEnvironment().run(
            job.activities.finish_tracking, FinishTrackingInput(job.job_id, job.run_id, "FAILED")
        )
    )
    await asyncio.sleep(2.0)  # MLflow's client alone gives up long before this
    assert not finishing.done(), "the run was closed (or given up) while MLflow was down"
    await proxy.on()
    finished = await asyncio.wait_for(finishing, timeout=60)

    assert (finished.status, finished.warnings) == ("FAILED", 0)
    run = MlflowClient(tracking_uri=mlflow_url).get_run(job.run_id)
    assert run.info.status == "FAILED"
    assert run.data.metrics["train/loss"] == 0.9
