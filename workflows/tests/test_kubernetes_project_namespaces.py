"""Trainer Jobs of a project run in its namespace (TRAINYARD_K8S_PROJECT_NAMESPACES), against
kmock's emulator: the launch puts them there, and the cancel, the watch, the log and the
reconciler find them there; a project the map does not name stays in the training namespace.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from temporalio.testing import ActivityEnvironment

from trainyard_workflows.activities.schemas import LaunchTrainerInput, StopTrainerInput
from trainyard_workflows.activities.training_activities import TrainingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.contracts import TrainingInput
from trainyard_workflows.launchers import AttemptHandle, LaunchRequest
from trainyard_workflows.launchers.base import AttemptStatus
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.kubernetes_manifests import attempt_labels, job_name
from trainyard_workflows.launchers.kubernetes_namespaces import (
    namespace_for,
    training_namespaces,
)
from trainyard_workflows.settings import WorkerSettings

TRAINING_NS = "ml-training"
VISION_NS = "ml-vision"
JOB_ID = "job_00112233445566778899aabbccddeeff"
NAME = job_name(JOB_ID, 1)
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
SECRETS = "v1/secrets"
SETTINGS = WorkerSettings(
    launcher="kubernetes",
    k8s_namespace=TRAINING_NS,
    k8s_project_namespaces={"vision": VISION_NS, "nlp": "ml-nlp"},
    k8s_images={"ultralytics": "registry.example/trainer-ultralytics:1.2"},
    stop_grace_s=5,
)
ENV = {"TRAINYARD_JOB_ID": JOB_ID, "TRAINYARD_CALLBACK_TOKEN": "token-1"}


def request(project_slug: str | None, job_id: str = JOB_ID) -> LaunchRequest:
    env = ENV | {"TRAINYARD_JOB_ID": job_id}
    return LaunchRequest(job_id, 1, "ultralytics", "/out", env, project_slug=project_slug)


LauncherFactory = Callable[[WorkerSettings], KubernetesLauncher]


@pytest.fixture
async def make_launcher(cluster: kmock.KubernetesEmulator) -> AsyncIterator[LauncherFactory]:
    """Launchers of one cluster: each one a worker (a restart, or one with other settings)."""
    launchers: list[KubernetesLauncher] = []

    async def client() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    def make(settings: WorkerSettings) -> KubernetesLauncher:
        launcher = KubernetesLauncher(settings, client, poll_s=0.01, observation_s=0.0)
        launchers.append(launcher)
        return launcher

    yield make
    for launcher in launchers:
        await launcher.aclose()


def sent(cluster: kmock.KubernetesEmulator, method: str, plural: str) -> list[kmock.Request]:
    return [r for r in cluster if r.method == method and r.resource and r.resource.plural == plural]


def stored(cluster: kmock.KubernetesEmulator, plural: str) -> set[tuple[str | None, str]]:
    """(namespace, name) of the objects of `plural` the cluster holds."""
    return {
        (key[1], key[2])
        for key, obj in cluster.objects.items()
        if key[0] == plural and not obj.deleted
    }


async def stop_when_gone(
    cluster: kmock.KubernetesEmulator, stopping: asyncio.Future[Any], namespace: str
) -> kmock.Request:
    """Play the garbage collector once the stop deleted the Job: the Job goes."""
    deadline = asyncio.get_running_loop().time() + 5
    while not sent(cluster, "DELETE", "jobs"):
        assert asyncio.get_running_loop().time() < deadline, "the Job was never deleted"
        await asyncio.sleep(0.01)
    (delete,) = sent(cluster, "DELETE", "jobs")
    del cluster.objects[JOBS, namespace, NAME]
    await asyncio.wait_for(stopping, 5)
    return delete


# --- which namespace -----------------------------------------------------------------------


def test_a_mapped_project_gets_its_namespace_and_any_other_the_training_namespace() -> None:
    assert namespace_for(SETTINGS, "vision") == VISION_NS
    assert namespace_for(SETTINGS, "default") == TRAINING_NS
    assert namespace_for(SETTINGS, None) == TRAINING_NS
    assert training_namespaces(SETTINGS) == [TRAINING_NS, "ml-nlp", VISION_NS]


# --- launch, cancel, watch -----------------------------------------------------------------


async def test_a_job_of_a_mapped_project_creates_its_job_and_secret_in_the_projects_namespace(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    handle = await make_launcher(SETTINGS).launch(request("vision"))

    assert (handle.namespace, handle.name) == (VISION_NS, NAME)
    assert stored(cluster, JOBS) == {(VISION_NS, NAME)}
    assert stored(cluster, SECRETS) == {(VISION_NS, NAME)}
    assert {r.namespace for r in cluster} == {VISION_NS}
    owners = cluster.objects[SECRETS, VISION_NS, NAME]["metadata"]["ownerReferences"]
    assert owners[0]["uid"] == cluster.objects[JOBS, VISION_NS, NAME]["metadata"]["uid"]


@pytest.mark.parametrize("project_slug", ["default", None])
async def test_a_job_of_an_unmapped_project_runs_in_the_training_namespace(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory, project_slug: str | None
) -> None:
    handle = await make_launcher(SETTINGS).launch(request(project_slug))

    assert handle.namespace == TRAINING_NS
    assert stored(cluster, JOBS) == {(TRAINING_NS, NAME)}
    assert stored(cluster, SECRETS) == {(TRAINING_NS, NAME)}


async def test_the_cancel_of_a_mapped_projects_job_deletes_it_in_the_projects_namespace(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    handle = await make_launcher(SETTINGS).launch(request("vision"))
    # Cancelled after a worker restart whose settings no longer map the project: the handle
    # still says where the Job is, so the cancel does not look in the training namespace.
    restarted = make_launcher(SETTINGS.model_copy(update={"k8s_project_namespaces": {}}))

    stopping = asyncio.ensure_future(restarted.stop(handle, grace_s=1))
    delete = await stop_when_gone(cluster, stopping, VISION_NS)

    assert (delete.namespace, delete.name) == (VISION_NS, NAME)
    assert stopping.result() == AttemptStatus(running=False)
    assert {r.namespace for r in cluster} == {VISION_NS}


async def test_watching_a_mapped_projects_job_reads_its_job_pods_and_log_there(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(SETTINGS)
    handle = await launcher.launch(request("vision"))
    cluster.objects[PODS, VISION_NS, f"{NAME}-x1"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{NAME}-x1",
            "namespace": VISION_NS,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": attempt_labels(JOB_ID, 1) | {"job-name": NAME},
        },
        "spec": {"containers": [{"name": "trainer", "image": "trainer"}]},
        "status": {"phase": "Running"},
    }
    cluster[f"get /api/v1/namespaces/{VISION_NS}/pods/{NAME}-x1/log"] << b"epoch 1/3\n"

    assert await launcher.status(handle) == AttemptStatus(running=True)
    assert await launcher.pending_reasons(handle) == []
    assert await launcher.disruptions(handle) == []
    assert await launcher.log_tail(handle, 5) == ["epoch 1/3"]
    assert {r.namespace for r in cluster} == {VISION_NS}


# --- reconcile -----------------------------------------------------------------------------


async def test_the_reconciler_finds_and_deletes_jobs_in_every_training_namespace(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(SETTINGS)
    other = "job_ffeeddccbbaa99887766554433221100"
    await launcher.launch(request("vision"))
    await launcher.launch(request("default", job_id=other))

    launched = await launcher.launched_objects()

    jobs = {(item.namespace, item.job_id) for item in launched if item.kind == "Job"}
    assert jobs == {(VISION_NS, JOB_ID), (TRAINING_NS, other)}
    (vision_job,) = [i for i in launched if i.kind == "Job" and i.namespace == VISION_NS]
    assert await launcher.delete_launched(vision_job) is True
    (delete,) = sent(cluster, "DELETE", "jobs")
    assert (delete.namespace, delete.name) == (VISION_NS, NAME)


# --- the activities: the slug comes with the attempt's grant --------------------------------


class Backend:
    """The internal API as far as launch and stop use it: the grant names the job's project."""

    def __init__(self, project_slug: str | None) -> None:
        self.project_slug = project_slug

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/attempts/1"):
            grant: dict[str, Any] = {"attempt": 1, "callback_token": "token-1"}
            if self.project_slug is not None:
                grant["project_slug"] = self.project_slug
            return httpx.Response(200, json=grant)
        if request.url.path.endswith("/events"):
            return httpx.Response(202, json=json.loads(request.content) | {"seq": 1})
        return httpx.Response(404, json={"detail": "not here"})


@pytest.mark.parametrize(
    ("project_slug", "namespace"),
    [("vision", VISION_NS), ("default", TRAINING_NS), (None, TRAINING_NS)],
)
async def test_the_launch_and_stop_activities_use_the_namespace_of_the_granted_project(
    cluster: kmock.KubernetesEmulator,
    make_launcher: LauncherFactory,
    tmp_path: Path,
    project_slug: str | None,
    namespace: str,
) -> None:
    settings = SETTINGS.model_copy(update={"data_dir": tmp_path})
    transport = httpx.MockTransport(Backend(project_slug))
    training = TrainingInput(JOB_ID, "ultralytics", "yolo11n.yaml", "/data", "detect", 1, 64, 4, 0)
    async with BackendClient("http://backend", "t", transport=transport) as backend:
        activities = TrainingActivities(backend, make_launcher(settings), settings)
        handle: AttemptHandle = await ActivityEnvironment().run(
            activities.launch_trainer, LaunchTrainerInput(training, 1)
        )
        assert stored(cluster, JOBS) == {(namespace, NAME)}
        stopping = asyncio.ensure_future(
            ActivityEnvironment().run(activities.stop_trainer, StopTrainerInput(handle))
        )
        delete = await stop_when_gone(cluster, stopping, namespace)

    assert handle.namespace == namespace
    assert (delete.namespace, delete.name) == (namespace, NAME)
    assert stopping.result().was_running is True
