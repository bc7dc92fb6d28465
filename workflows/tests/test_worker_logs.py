"""The worker's structured logs (telemetry/logs.py): `trainyard-worker` writes JSON lines with
TRAINYARD_LOG_FORMAT=json, and every line an activity logs names its job and attempt
(telemetry/activity_logs.py), whichever of the activity inputs carries them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from trainyard_workflows.activities.schemas import (
    LaunchTrainerInput,
    ReportStateInput,
    WatchTrainerInput,
)
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.launchers.base import AttemptHandle
from trainyard_workflows.telemetry.activity_logs import ActivityLogContext
from trainyard_workflows.telemetry.logs import configure_logging

from .test_worker import WORKER, worker_env

_log = logging.getLogger("trainyard_workflows.test")


async def test_the_worker_writes_json_lines_when_told_to(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = temporal_env.client.service_client.config.target_host
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *WORKER,
            env=worker_env(
                tmp_path,
                temporal_address=address,
                task_queue=f"test-logs-{uuid.uuid4().hex}",
                log_format="json",
            ),
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while "trainyard-worker ready" not in log.read_text():
            assert process.returncode is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {record["service"] for record in records} == {"trainyard-worker"}
    ready = next(r for r in records if r["message"].startswith("trainyard-worker ready"))
    assert (ready["level"], ready["logger"]) == ("info", "trainyard_workflows.worker")
    assert ready["timestamp"].endswith("Z")
    assert any(
        r["level"] == "warning" and "embedded internal token" in r["message"] for r in records
    )


@activity.defn
async def report(request: ReportStateInput) -> None:
    _log.info("report")


@activity.defn
async def launch(request: LaunchTrainerInput) -> None:
    _log.info("launch")


@activity.defn
async def watch(request: WatchTrainerInput) -> None:
    _log.info("watch")


@workflow.defn(sandboxed=False)
class ThreeActivities:
    @workflow.run
    async def run(self, job_id: str) -> None:
        timeout = timedelta(seconds=30)
        await workflow.execute_activity(
            report, ReportStateInput(job_id, "RUNNING"), start_to_close_timeout=timeout
        )
        training = TrainingInput(job_id, "timm", "m", "file:///d", "classify", 1, 32, 2, 0)
        await workflow.execute_activity(
            launch, LaunchTrainerInput(training, attempt=2), start_to_close_timeout=timeout
        )
        handle = AttemptHandle(job_id, 3, 1, "/out", "/out/log", 0.0)
        await workflow.execute_activity(
            watch, WatchTrainerInput(handle, 30.0), start_to_close_timeout=timeout
        )


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """configure_logging into a string; the root logger's handlers and level put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers, root.level = handlers, level


async def test_each_activitys_lines_name_its_job_and_attempt(
    temporal_env: WorkflowEnvironment, captured: io.StringIO
) -> None:
    configure_logging("trainyard-worker", "info", "json", stream=captured)
    queue = f"test-activity-logs-{uuid.uuid4().hex}"
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[ThreeActivities],
        activities=[report, launch, watch],
        interceptors=[ActivityLogContext()],
    ):
        await temporal_env.client.execute_workflow(
            ThreeActivities.run, "job_logs1", id=f"wf-{uuid.uuid4().hex}", task_queue=queue
        )
    _log.info("after")

    records = {
        r["message"]: r
        for r in map(json.loads, captured.getvalue().splitlines())
        if r["logger"] == "trainyard_workflows.test"
    }
    assert records["report"]["job_id"] == "job_logs1"
    assert "attempt" not in records["report"]  # a state report is not an attempt's
    assert (records["launch"]["job_id"], records["launch"]["attempt"]) == ("job_logs1", 2)
    assert (records["watch"]["job_id"], records["watch"]["attempt"]) == ("job_logs1", 3)
    assert "job_id" not in records["after"]  # bound in the activity's task only
