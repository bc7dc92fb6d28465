"""The worker's Prometheus endpoints (telemetry/metrics.py): `trainyard-worker` as a process
serves its own metrics on TRAINYARD_METRICS_PORT and the Temporal SDK's on
TRAINYARD_TEMPORAL_METRICS_PORT; promtool lints ours. (The end-to-end training in
platform/backend/tests/observability scrapes them with real traffic.)"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from trainyard_testing.prometheus import promtool_check_metrics

from .test_worker import WORKER, free_port, worker_env

WORKER_METRICS = (
    "trainyard_dataset_validation_duration_seconds",
    "trainyard_attempts_ended_total",
    "trainyard_trainer_launch_duration_seconds",
    "trainyard_reconciler_removals_total",
)


async def test_the_worker_serves_its_metrics_and_the_temporal_sdks(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = temporal_env.client.service_client.config.target_host
    ours, temporals = free_port(), free_port()
    log = tmp_path / "worker.log"
    env = worker_env(
        tmp_path,
        temporal_address=address,
        task_queue=f"test-metrics-{time.monotonic_ns()}",
        metrics_port=str(ours),
        temporal_metrics_port=str(temporals),
    )
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *WORKER, env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 60
        while "trainyard-worker ready" not in log.read_text():
            assert process.returncode is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=10) as client:
            own = await client.get(f"http://127.0.0.1:{ours}/metrics")
            sdk = await client.get(f"http://127.0.0.1:{temporals}/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)

    assert own.status_code == 200
    promtool_check_metrics(own.text)
    declared = {line.split()[2] for line in own.text.splitlines() if line.startswith("# TYPE")}
    assert set(WORKER_METRICS) <= declared
    assert sdk.status_code == 200
    # The SDK's pollers report as soon as the worker polls its task queue.
    assert "temporal_" in sdk.text
