"""The watch activity tells users why a Kubernetes attempt waits, live, and does not count the
wait as trainer silence.

The real watch_trainer activity (in temporalio's ActivityEnvironment) follows a real
KubernetesLauncher talking to kmock's emulator; the backend's internal API is answered over
httpx's mock transport, which records the events the watch posts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import kmock
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from temporalio.testing import ActivityEnvironment

from trainyard_workflows.activities.schemas import DISRUPTED, EXITED, WatchResult, WatchTrainerInput
from trainyard_workflows.activities.training_activities import TrainingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.launchers import LaunchRequest
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.kubernetes_manifests import attempt_labels, job_name
from trainyard_workflows.settings import WorkerSettings

NS = "training"
JOB_ID = "job_fedcba9876543210fedcba9876543210"
NAME = job_name(JOB_ID, 1)
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


class Backend:
    """The internal API as far as the watch uses it: liveness (no heartbeat yet) and events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.pending_posted = asyncio.Event()
        self.disruption_posted = asyncio.Event()
        self.posted = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/liveness"):
            return httpx.Response(
                200,
                json={"state": "STARTING", "attempt": 1, "last_heartbeat_at": None, "done": False},
            )
        if request.url.path.endswith("/events"):
            self.events.append(json.loads(request.content))
            self.posted.set()
            if self.events[-1]["type"] == "attempt_pending":
                self.pending_posted.set()
            if self.events[-1]["type"] == "attempt_disrupted":
                self.disruption_posted.set()
            return httpx.Response(201, json={"seq": len(self.events)})
        return httpx.Response(404, json={"detail": "not here"})

    def pending_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "attempt_pending"]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    async def until_message(self, message: str, timeout_s: float = 10) -> None:
        """Until an event with `message` has been posted."""
        async with asyncio.timeout(timeout_s):
            while not any(e["message"] == message for e in self.events):
                self.posted.clear()
                await self.posted.wait()


@pytest.fixture
async def launcher(cluster: kmock.KubernetesEmulator) -> AsyncIterator[KubernetesLauncher]:
    async def client() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    settings = WorkerSettings(
        launcher="kubernetes", k8s_namespace=NS, k8s_images={"ultralytics": "reg/trainer:1"}
    )
    launcher = KubernetesLauncher(settings, client, poll_s=0.01)
    yield launcher
    await launcher.aclose()


def set_pod(
    cluster: kmock.KubernetesEmulator,
    status: dict[str, Any],
    suffix: str = "x1",
    created: str = "2026-01-01T00:00:00Z",
) -> None:
    cluster.objects["v1/pods", NS, f"{NAME}-{suffix}"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{NAME}-{suffix}",
            "namespace": NS,
            "creationTimestamp": created,
            "labels": attempt_labels(JOB_ID, 1) | {"job-name": NAME},
        },
        "spec": {"containers": [{"name": "trainer", "image": "reg/trainer:1"}]},
        "status": status,
    }


async def test_a_pending_pod_is_reported_live_and_its_wait_is_not_silence(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    backend = Backend()
    settings = WorkerSettings(watch_poll_s=0.05)
    handle = await launcher.launch(
        LaunchRequest(
            job_id=JOB_ID,
            attempt=1,
            framework="ultralytics",
            output_dir="/out",
            env={"TRAINYARD_JOB_ID": JOB_ID, "TRAINYARD_CALLBACK_TOKEN": "t"},
            gpus=1,
        )
    )
    unschedulable = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": UNSCHEDULABLE,
            }
        ],
    }
    set_pod(cluster, unschedulable)

    async with BackendClient(
        "http://backend.test", "secret", transport=httpx.MockTransport(backend)
    ) as client:
        activities = TrainingActivities(client, launcher, settings)
        # A heartbeat timeout far shorter than the wait: only the pending wait keeps it alive.
        watch = asyncio.create_task(
            ActivityEnvironment().run(
                activities.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=1.0)
            )
        )
        await asyncio.wait_for(backend.pending_posted.wait(), timeout=10)
        first = backend.pending_events()[0]
        assert first["message"] == (f"attempt 1 is waiting to run: Unschedulable: {UNSCHEDULABLE}")
        assert first["data"] == {
            "attempt": 1,
            "reasons": [{"reason": "Unschedulable", "message": UNSCHEDULABLE}],
        }
        await asyncio.sleep(2.5)  # > the heartbeat timeout, still waiting for a GPU node
        assert not watch.done()
        assert len(backend.pending_events()) == 1  # one event per change, not per poll

        set_pod(cluster, {"phase": "Running"})  # a GPU node freed up
        await backend.until_message("attempt 1 is no longer waiting")
        cluster.objects["batch/v1/jobs", NS, NAME].patch(
            {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
        )
        set_pod(cluster, {"phase": "Succeeded"})
        result: WatchResult = await asyncio.wait_for(watch, timeout=10)

    assert (result.outcome, result.exit_code) == (EXITED, 0)
    assert len(backend.pending_events()) == 2  # waiting, then no longer


PREEMPTED = "Preempted in order to admit critical pod"


async def test_a_preempted_pod_is_reported_and_ends_the_attempt(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    backend = Backend()
    handle = await launcher.launch(
        LaunchRequest(JOB_ID, 1, "ultralytics", "/out", {"TRAINYARD_JOB_ID": JOB_ID}, gpus=1)
    )
    set_pod(cluster, {"phase": "Running"})

    async with BackendClient(
        "http://backend.test", "secret", transport=httpx.MockTransport(backend)
    ) as client:
        settings = WorkerSettings(watch_poll_s=0.05, stop_grace_s=0)
        activities = TrainingActivities(client, launcher, settings)
        watch = asyncio.create_task(
            ActivityEnvironment().run(
                activities.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=60)
            )
        )
        await asyncio.sleep(0.3)
        # The scheduler preempts the pod; the Job (podFailurePolicy: Ignore) makes another,
        # which would train from scratch: the watch deletes the Job instead.
        preempted = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
        }
        set_pod(cluster, {"phase": "Failed", "conditions": [preempted | {"message": PREEMPTED}]})
        set_pod(cluster, {"phase": "Pending"}, suffix="x2", created="2026-01-01T00:05:00Z")
        await asyncio.wait_for(backend.disruption_posted.wait(), timeout=10)
        await collect_after_foreground_delete(cluster, pods=("x1", "x2"))
        result: WatchResult = await asyncio.wait_for(watch, timeout=10)

    assert (result.outcome, result.reason) == (DISRUPTED, f"PreemptionByScheduler: {PREEMPTED}")
    [disrupted] = backend.of_type("attempt_disrupted")
    assert disrupted["message"] == (
        "attempt 1 lost its pod to the cluster (PreemptionByScheduler: "
        f"{PREEMPTED}); a new attempt resumes from the newest checkpoint, not counted as a "
        "failure"
    )
    assert disrupted["data"] == {
        "attempt": 1,
        "reason": "PreemptionByScheduler",
        "message": PREEMPTED,
    }


async def collect_after_foreground_delete(
    cluster: kmock.KubernetesEmulator, pods: tuple[str, ...] = ("x1",)
) -> None:
    """The garbage collector, once the Job was deleted in the foreground: pods, then the Job."""
    while not any(r.method == "DELETE" for r in cluster):  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # the emulator has no watch to wait on
    for suffix in pods:
        cluster.objects["v1/pods", NS, f"{NAME}-{suffix}"].delete()
    path = f"/apis/batch/v1/namespaces/{NS}/jobs/{NAME}"
    await cluster.patch(path, json={"metadata": {"finalizers": []}})


PULL_FAILED = 'Back-off pulling image "reg/trainer:1": not found'


async def test_an_image_that_cannot_be_pulled_is_given_up_after_the_configured_wait(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    backend = Backend()
    handle = await launcher.launch(
        LaunchRequest(JOB_ID, 1, "ultralytics", "/out", {"TRAINYARD_JOB_ID": JOB_ID})
    )
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": PULL_FAILED}}
    container = {"name": "trainer", "image": "reg/trainer:1", "imageID": "", "ready": False}
    set_pod(
        cluster,
        {
            "phase": "Pending",
            "containerStatuses": [container | {"restartCount": 0, "state": waiting}],
        },
    )
    settings = WorkerSettings(watch_poll_s=0.05, unstartable_timeout_s=0.5, stop_grace_s=0)

    async with BackendClient(
        "http://backend.test", "secret", transport=httpx.MockTransport(backend)
    ) as client:
        activities = TrainingActivities(client, launcher, settings)
        started = asyncio.get_running_loop().time()
        watch = ActivityEnvironment().run(
            activities.watch_trainer, WatchTrainerInput(handle, heartbeat_timeout_s=60)
        )

        # The Job deleted in the foreground: play the garbage collector once asked.
        collector = asyncio.create_task(collect_after_foreground_delete(cluster))
        result: WatchResult = await asyncio.wait_for(watch, timeout=20)
        await collector

    assert asyncio.get_running_loop().time() - started >= 0.5
    assert result.outcome == "unstartable"
    assert result.reason == f"ImagePullBackOff: {PULL_FAILED} (for more than 0.5s)"
    [pending] = backend.pending_events()  # the user saw why, live, before the job failed
    assert "ImagePullBackOff" in pending["message"]
