"""The reconciler: trainer Jobs and Secrets that no live attempt needs are deleted and recorded;
everything else, and everything when the backend cannot be asked, is left alone.

Real KubernetesLauncher against kmock's emulator, real Temporal dev server for the schedule;
the backend's internal API is answered over httpx's mock transport (it records the events).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import kmock
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from prometheus_client import REGISTRY
from temporalio.client import ScheduleActionStartWorkflow, ScheduleIntervalSpec
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from trainyard_workflows.activities.reconcile_activities import (
    ReconcileActivities,
    ReconcileReport,
    reclaim_reason,
)
from trainyard_workflows.backend_client import BackendClient, BackendUnavailableError
from trainyard_workflows.internal_api import Liveness
from trainyard_workflows.launchers import LaunchRequest
from trainyard_workflows.launchers.base import LaunchedObject
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.kubernetes_manifests import job_name, secret_manifest
from trainyard_workflows.reconcile import (
    RECONCILE_WORKFLOW,
    ReconcileWorkflow,
    ensure_reconcile_schedule,
)
from trainyard_workflows.settings import WorkerSettings

NS = "training"
SETTINGS = WorkerSettings(
    launcher="kubernetes", k8s_namespace=NS, k8s_images={"ultralytics": "reg/trainer:1"}
)


def job_id(label: str) -> str:
    return f"job_{label * 32}"


class Backend:
    """Liveness per job id (absent: 404) and the events posted; `fail` answers 500."""

    def __init__(self, jobs: dict[str, tuple[str, int]], fail: bool = False) -> None:
        self.jobs = jobs
        self.fail = fail
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            return httpx.Response(500, json={"detail": "down"})
        parts = request.url.path.split("/")  # /internal/v1/jobs/<id>/<what>
        job, what = parts[4], parts[5]
        if what == "events":
            self.events.append((job, json.loads(request.content)))
            return httpx.Response(201, json={})
        if job not in self.jobs:
            return httpx.Response(404, json={"detail": f"no job {job}"})
        state, attempt = self.jobs[job]
        liveness = {"state": state, "attempt": attempt, "last_heartbeat_at": None, "done": False}
        return httpx.Response(200, json=liveness)

    def client(self) -> BackendClient:
        return BackendClient(
            "http://backend.test", "secret", retry_for_s=0.5, transport=httpx.MockTransport(self)
        )


@pytest.fixture
async def launcher(cluster: kmock.KubernetesEmulator) -> AsyncIterator[KubernetesLauncher]:
    async def client() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    launcher = KubernetesLauncher(SETTINGS, client, poll_s=0.01)
    yield launcher
    await launcher.aclose()


def request(job: str, attempt: int = 1) -> LaunchRequest:
    env = {"TRAINYARD_JOB_ID": job, "TRAINYARD_CALLBACK_TOKEN": "t"}
    return LaunchRequest(job, attempt, "ultralytics", "/out", env)


def complete(cluster: kmock.KubernetesEmulator, job: str, attempt: int = 1) -> None:
    cluster.objects["batch/v1/jobs", NS, job_name(job, attempt)].patch(
        {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    )


def _removals() -> float:
    return REGISTRY.get_sample_value("trainyard_reconciler_removals_total") or 0.0


def names(cluster: kmock.KubernetesEmulator, plural: str) -> set[str]:
    return {
        key[2]
        for key, obj in cluster.objects.items()
        if key[0] == plural and not obj.deleted and "deletionTimestamp" not in obj["metadata"]
    }


@pytest.mark.parametrize(
    ("launched", "job", "expected"),
    [
        (LaunchedObject("Job", NS, "n", "j", 1, active=True), None, "unknown to the platform"),
        (LaunchedObject("Job", NS, "n", "j", 1, active=True), ("FAILED", 1), "still runs"),
        (LaunchedObject("Job", NS, "n", "j", 1, active=False), ("FAILED", 1), None),
        (LaunchedObject("Job", NS, "n", "j", 1, active=True), ("RUNNING", 1), None),
        (LaunchedObject("Job", NS, "n", "j", 1, active=True), ("RUNNING", 2), "replaced"),
        (LaunchedObject("Secret", NS, "n", "j", 1), ("SUCCEEDED", 1), "no Job owns"),
        (LaunchedObject("Secret", NS, "n", "j", 1, owned=True), ("SUCCEEDED", 1), None),
        (LaunchedObject("Secret", NS, "n", "j", 1), ("STARTING", 1), None),  # launch under way
        (LaunchedObject("Secret", NS, "n", "j", 1, owned=True), None, None),  # goes with its Job
        (LaunchedObject("Secret", NS, "n", "j", 1), None, "unknown to the platform"),
    ],
)
def test_what_is_reclaimed_and_what_is_kept(
    launched: LaunchedObject, job: tuple[str, int] | None, expected: str | None
) -> None:
    liveness = (
        None
        if job is None
        else Liveness(state=job[0], attempt=job[1], last_heartbeat_at=None, done=False)
    )

    reason = reclaim_reason(launched, liveness)

    assert (reason is None) == (expected is None)
    if expected is not None:
        assert reason is not None
        assert expected in reason


async def test_a_pass_deletes_leftovers_records_them_and_keeps_the_rest(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    unknown, ended, finished, live, replaced = (job_id(c) for c in "abcde")
    for job in (unknown, ended, finished, live, replaced):
        await launcher.launch(request(job))
    complete(cluster, finished)
    # A launch that stopped between its Secret and its Job, for a job that then failed.
    orphan = job_id("f")
    cluster.objects["v1/secrets", NS, job_name(orphan, 1)] = secret_manifest(request(orphan), NS)
    backend = Backend(
        {
            ended: ("CANCELLED", 1),
            finished: ("SUCCEEDED", 1),
            live: ("RUNNING", 1),
            replaced: ("RUNNING", 2),
            orphan: ("FAILED", 1),
        }
    )

    removals_before = _removals()

    async with backend.client() as client:
        report: ReconcileReport = await ActivityEnvironment().run(
            ReconcileActivities(client, launcher).reconcile_launched
        )

    gone = {(o.kind, o.job_id) for o in report.removed}
    assert gone == {("Job", unknown), ("Job", ended), ("Job", replaced), ("Secret", orphan)}
    assert _removals() - removals_before == 4  # trainyard_reconciler_removals_total
    assert report.examined == 5 + 5 + 1  # five Jobs, their five Secrets, the orphan Secret
    assert names(cluster, "batch/v1/jobs") == {job_name(finished, 1), job_name(live, 1)}
    assert job_name(orphan, 1) not in names(cluster, "v1/secrets")
    # Known jobs get the removal on their timeline; the unknown one has no timeline.
    recorded = {job for job, event in backend.events if event["type"] == "attempt_reclaimed"}
    assert recorded == {ended, replaced, orphan}


async def test_nothing_is_deleted_when_the_backend_cannot_be_asked(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    await launcher.launch(request(job_id("a")))
    backend = Backend({}, fail=True)

    async with backend.client() as client:
        with pytest.raises(BackendUnavailableError):
            await ActivityEnvironment().run(
                ReconcileActivities(client, launcher).reconcile_launched
            )

    assert names(cluster, "batch/v1/jobs") == {job_name(job_id("a"), 1)}


async def test_the_schedule_is_made_once_and_runs_the_reconciler(
    temporal_env: WorkflowEnvironment,
    cluster: kmock.KubernetesEmulator,
    launcher: KubernetesLauncher,
) -> None:
    client = temporal_env.client
    queue = f"reconcile-{uuid.uuid4().hex}"
    await launcher.launch(request(job_id("a")))
    backend = Backend({})  # the job is unknown: its Job must go

    created = await ensure_reconcile_schedule(client, queue, timedelta(hours=1))
    again = await ensure_reconcile_schedule(client, queue, timedelta(minutes=1))

    assert (created, again) == (True, False)
    handle = client.get_schedule_handle("trainyard-reconcile")
    try:
        described = await handle.describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (RECONCILE_WORKFLOW, queue)
        assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=1))]
        async with (
            backend.client() as backend_client,
            Worker(
                client,
                task_queue=queue,
                workflows=[ReconcileWorkflow],
                activities=[ReconcileActivities(backend_client, launcher).reconcile_launched],
            ),
        ):
            await handle.trigger()
            async with asyncio.timeout(30):
                # The emulator has no watch to wait on: poll its objects.
                while names(cluster, "batch/v1/jobs"):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
    finally:
        await handle.delete()
