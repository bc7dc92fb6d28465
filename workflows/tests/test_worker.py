"""`trainyard-worker` as a process: start-up against Temporal, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

WORKER = [sys.executable, "-m", "trainyard_workflows.worker"]


def worker_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TRAINYARD_")}
    env["TRAINYARD_DATA_DIR"] = str(tmp_path / "data")
    env.update({f"TRAINYARD_{name.upper()}": value for name, value in settings.items()})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def pollers_of(env: WorkflowEnvironment, queue: str) -> int:
    """How many workers poll `queue` for workflow tasks (0 until the first poll lands)."""
    deadline = time.monotonic() + 30
    while True:
        described = await env.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=env.client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if described.pollers or time.monotonic() > deadline:
            return len(described.pollers)
        await asyncio.sleep(0.2)


async def test_the_worker_exits_1_naming_the_address_when_temporal_is_unreachable(
    tmp_path: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        *WORKER,
        env=worker_env(tmp_path, temporal_address=address, temporal_connect_timeout_s="1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 1
    message = stderr.decode()
    assert f"Temporal is unreachable at {address}" in message
    assert "temporal server start-dev" in message


async def test_the_worker_refuses_invalid_settings_with_exit_2(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *WORKER,
        env=worker_env(tmp_path, watch_poll_s="soon"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 2
    assert "watch_poll_s" in stderr.decode()


async def test_the_worker_serves_its_task_queue_and_stops_cleanly_on_sigterm(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = temporal_env.client.service_client.config.target_host
    queue = f"test-worker-{time.monotonic_ns()}"
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *WORKER,
            env=worker_env(tmp_path, temporal_address=address, task_queue=queue),
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while "trainyard-worker ready" not in log.read_text():
            assert process.returncode is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        assert f"task queue '{queue}'" in log.read_text()
        assert await pollers_of(temporal_env, queue) > 0

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert code == 0, log.read_text()
    assert "trainyard-worker stopped" in log.read_text()
