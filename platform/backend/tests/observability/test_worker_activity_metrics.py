"""The worker's metrics move when its activities do their work: the real activities, talking
to this app's real internal API (and, for a launch, the Kubernetes launcher against kmock's
emulator), read back from the worker process's registry as Prometheus would read it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
from fastapi import FastAPI
from kubernetes_asyncio.client import ApiClient, Configuration
from prometheus_client import REGISTRY, generate_latest
from temporalio.testing import ActivityEnvironment

from trainyard_workflows.activities.schemas import (
    LaunchTrainerInput,
    ReportStateInput,
    ValidateDatasetInput,
)
from trainyard_workflows.activities.training_activities import TrainingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.subprocess_launcher import SubprocessLauncher
from trainyard_workflows.settings import WorkerSettings

from ..support import INTERNAL_TOKEN, callback, move, start_attempt, submit
from .metrics_text import Scrape

ENDED = "trainyard_attempts_ended_total"


def worker_scrape() -> Scrape:
    return Scrape(generate_latest(REGISTRY).decode())


@pytest.fixture
async def backend(app: FastAPI) -> AsyncIterator[BackendClient]:
    async with BackendClient(
        "http://trainyard.test", INTERNAL_TOKEN, transport=httpx.ASGITransport(app=app)
    ) as client:
        yield client


@pytest.fixture
def activities(backend: BackendClient, tmp_path: Path) -> TrainingActivities:
    return TrainingActivities(
        backend, SubprocessLauncher(tmp_path), WorkerSettings(data_dir=tmp_path)
    )


async def test_a_dataset_validation_is_timed_with_its_outcome(
    api: httpx.AsyncClient,
    job_body: dict[str, Any],
    dataset_dir: Path,
    activities: TrainingActivities,
) -> None:
    job = await submit(api, job_body)
    before = worker_scrape()

    report = await ActivityEnvironment().run(
        activities.validate_dataset, ValidateDatasetInput(job["id"], dataset_dir.as_uri(), "detect")
    )

    after = worker_scrape()
    outcome = "ok" if report.ok else "invalid"
    name = "trainyard_dataset_validation_duration_seconds_count"
    assert after.value(name, outcome=outcome) - before.value(name, outcome=outcome) == 1


@pytest.mark.parametrize(
    ("ending", "reason"),
    [("trainer", "trainer_failed"), ("worker", "no_heartbeat")],
)
async def test_the_last_attempt_ends_final_with_the_jobs_reason(
    api: httpx.AsyncClient,
    job_body: dict[str, Any],
    activities: TrainingActivities,
    ending: str,
    reason: str,
) -> None:
    job = await submit(api, job_body)
    token = await start_attempt(api, job["id"])
    before = worker_scrape()
    if ending == "trainer":
        done = {"status": "failed", "reason": "diverged", "metrics": {}, "artifacts": {}}
        assert (await callback(api, job["id"], "done", token, done)).status_code == 202
        request = ReportStateInput(job["id"], None)  # the backend decided
    else:
        request = ReportStateInput(job["id"], "FAILED", "no heartbeat for 60s: attempt 1 lost")

    await ActivityEnvironment().run(activities.report_state, request)

    after = worker_scrape()
    assert (
        after.value(ENDED, outcome="final", reason=reason)
        - before.value(ENDED, outcome="final", reason=reason)
        == 1
    )


async def test_a_job_that_ends_before_any_attempt_ends_no_attempt(
    api: httpx.AsyncClient, job_body: dict[str, Any], activities: TrainingActivities
) -> None:
    job = await submit(api, job_body)
    before = worker_scrape()

    text = "dataset validation failed: no images"
    await ActivityEnvironment().run(
        activities.report_state, ReportStateInput(job["id"], "FAILED", text)
    )

    assert worker_scrape().value(ENDED) == before.value(ENDED)


async def test_a_retry_launch_counts_the_previous_attempt_and_times_the_launch(
    api: httpx.AsyncClient,
    job_body: dict[str, Any],
    backend: BackendClient,
    cluster: kmock.KubernetesEmulator,
    tmp_path: Path,
) -> None:
    job = await submit(api, job_body)
    assert (await move(api, job["id"], "RUNNING")).status_code == 200
    settings = WorkerSettings(
        data_dir=tmp_path,
        launcher="kubernetes",
        k8s_namespace="ml-training",
        k8s_images={"ultralytics": "registry.example/trainer-ultralytics:1.2"},
    )

    async def kubernetes() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    launcher = KubernetesLauncher(settings, kubernetes, poll_s=0.01, observation_s=0.0)
    training = TrainingInput(job["id"], "ultralytics", "yolo11n.yaml", "/d", "detect", 1, 64, 4, 0)
    retry = LaunchTrainerInput(
        training, 2, retry_reason="its pod was taken by the cluster: preempted", interrupted=True
    )
    before = worker_scrape()
    try:
        await ActivityEnvironment().run(
            TrainingActivities(backend, launcher, settings).launch_trainer, retry
        )
    finally:
        await launcher.aclose()

    after = worker_scrape()

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(ENDED, outcome="interrupted", reason="interrupted") == 1
    assert moved(ENDED, outcome="retried") == 0
    assert moved("trainyard_trainer_launch_duration_seconds_count", launcher="kubernetes") == 1
