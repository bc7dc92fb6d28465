"""Kueue admits trainer Jobs (TRAINYARD_K8S_KUEUE_QUEUE): the real backend, workflow and
worker against kmock's emulator, where the test plays Kueue too — it makes the Workload of
each suspended Job, answers the visibility API with the LocalQueue's pending list, admits the
Workload (unsuspending the Job), and evicts it to make room for a higher-priority job.
"""

from __future__ import annotations

from typing import Any

import httpx
import kmock
import pytest
from temporalio.testing import WorkflowEnvironment

from trainyard_testing.kubernetes import KubernetesApi
from trainyard_workflows.launchers.kubernetes_manifests import job_name
from trainyard_workflows.settings import WorkerSettings

from ..support import callback, checkpoint_saved, events, get_job, heartbeat, submit
from .cluster_play import (
    JOBS,
    NAMESPACE,
    collect_garbage,
    event_of,
    job_deletions,
    job_reaches,
    launched,
    pod_status,
    set_pod,
    trainer_container,
    wait_until,
)
from .test_kubernetes_jobs import trainer_succeeds, workflow_result

pytestmark = pytest.mark.xdist_group("kubernetes")

QUEUE = "trainyard"
WORKLOADS = kmock.resource("kueue.x-k8s.io/v1beta2/workloads")
PENDING_PATH = (
    f"/apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/{NAMESPACE}/localqueues/{QUEUE}"
    "/pendingworkloads"
)
NO_QUOTA = (
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu "
    "in flavor gpu, 1 more needed"
)


@pytest.fixture
def worker_overrides() -> dict[str, object]:
    return {"k8s_kueue_queue": QUEUE}


class KueuePlay:
    """The test's Kueue: Workloads in the emulator and the visibility API's pending list."""

    def __init__(self, cluster: KubernetesApi) -> None:
        self.cluster = cluster
        self.pending: list[dict[str, Any]] = []
        cluster.resources["kueue.x-k8s.io/v1beta2/workloads"] = kmock.ResourceInfo(
            namespaced=True, kind="Workload"
        )
        cluster[f"get {PENDING_PATH}"] << (lambda: {"items": list(self.pending)})

    def job_uid(self, job_id: str, attempt: int = 1) -> str:
        uid: str = self.cluster.objects[JOBS, NAMESPACE, job_name(job_id, attempt)]["metadata"][
            "uid"
        ]
        return uid

    def workload_of(self, job_id: str, attempt: int = 1, gpus: int = 1) -> str:
        """Kueue's Workload for the attempt's Job, pending for want of quota; its name."""
        name = f"job-{job_name(job_id, attempt)}-1a2b3"
        container = {"name": "trainer", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
        self.cluster.objects[WORKLOADS, NAMESPACE, name] = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "Workload",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"kueue.x-k8s.io/job-uid": self.job_uid(job_id, attempt)},
            },
            "spec": {
                "queueName": QUEUE,
                "podSets": [
                    {"name": "main", "count": 1, "template": {"spec": {"containers": [container]}}}
                ],
            },
            "status": {"conditions": [_condition("QuotaReserved", "False", "Pending", NO_QUOTA)]},
        }
        return name

    def queue_order(self, *names: str) -> None:
        """The LocalQueue's pending workloads, first first."""
        self.pending = [
            {
                "metadata": {"name": name, "namespace": NAMESPACE},
                "localQueueName": QUEUE,
                "positionInLocalQueue": position,
                "positionInClusterQueue": position,
                "priority": 0,
            }
            for position, name in enumerate(names)
        ]

    def admit(self, job_id: str, workload: str, attempt: int = 1) -> None:
        """Kueue admits the workload: its conditions, then the Job unsuspended."""
        self.cluster.objects[WORKLOADS, NAMESPACE, workload].patch(
            {
                "status": {
                    "conditions": [
                        _condition("QuotaReserved", "True", "QuotaReserved", ""),
                        _condition("Admitted", "True", "Admitted", "The workload is admitted"),
                    ]
                }
            }
        )
        self.pending = [p for p in self.pending if p["metadata"]["name"] != workload]
        self.cluster.objects[JOBS, NAMESPACE, job_name(job_id, attempt)].patch(
            {"spec": {"suspend": False}}
        )

    def preempt(self, job_id: str, workload: str, by_job_uid: str) -> str:
        """Kueue evicts the workload for another: the Job suspended again, its pods go."""
        message = (
            f"Preempted to accommodate a workload (UID: 0c5f, JobUID: {by_job_uid}) due to "
            "prioritization in the ClusterQueue"
        )
        self.cluster.objects[WORKLOADS, NAMESPACE, workload].patch(
            {
                "status": {
                    "conditions": [
                        _condition("Evicted", "True", "Preempted", message),
                        _condition("Preempted", "True", "InClusterQueue", message),
                        _condition("Admitted", "False", "NoReservation", "evicted"),
                    ]
                }
            }
        )
        self.cluster.objects[JOBS, NAMESPACE, job_name(job_id, 1)].patch(
            {"spec": {"suspend": True}}
        )
        set_pod(self.cluster, job_id, pod_status("Failed", exit_code=143))
        return message


def _condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


@pytest.fixture
def kueue(cluster: KubernetesApi) -> KueuePlay:
    return KueuePlay(cluster)


async def queued_at(api: httpx.AsyncClient, job_id: str, position: int) -> dict[str, Any]:
    """The job once it is QUEUED at `position` (Kueue's place, as the worker reported it)."""

    async def check() -> dict[str, Any] | None:
        job = await get_job(api, job_id)
        queue = job.get("queue") or {}
        return job if job["state"] == "QUEUED" and queue.get("position") == position else None

    return await wait_until(check, f"job {job_id} QUEUED at {position}", timeout_s=60)


async def test_kueue_holds_the_job_queued_with_its_place_and_admits_it(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    kueue: KueuePlay,
    temporal_env: WorkflowEnvironment,
    job_body: dict[str, Any],
    shapes_uri: str,
) -> None:
    body = job_body | {"dataset": shapes_uri, "gpus": 1, "priority": "high"}
    job_id = (await submit(live_api, body))["id"]
    token = await launched(cluster, job_id)

    job = cluster.objects[JOBS, NAMESPACE, job_name(job_id, 1)]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == QUEUE
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "trainyard-high"

    # Another team's 2-GPU workload is ahead in the LocalQueue.
    ahead = "job-someone-elses-7f7f7"
    cluster.objects[WORKLOADS, NAMESPACE, ahead] = {
        "metadata": {"name": ahead, "namespace": NAMESPACE},
        "spec": {
            "podSets": [
                {
                    "name": "main",
                    "count": 2,
                    "template": {
                        "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
                    },
                }
            ]
        },
    }
    workload = kueue.workload_of(job_id)
    kueue.queue_order(ahead, workload)

    queued = await queued_at(live_api, job_id, 2)
    assert queued["queue"]["gpus_ahead"] == 2
    assert queued["queue"]["hold"] == "kueue"
    assert queued["queue"]["reason"] == f"Kueue, LocalQueue {QUEUE}: {NO_QUOTA}"
    # The stream told each place (before Kueue made the Workload, the place was unknown: 0).
    places = [e["data"]["position"] for e in await events(live_api, job_id) if e["type"] == "queue"]
    assert places[-1] == 2
    assert set(places) <= {0, 2}

    # The workload ahead is admitted: this one moves up.
    kueue.queue_order(workload)
    await queued_at(live_api, job_id, 1)

    kueue.admit(job_id, workload)
    await job_reaches(live_api, job_id, "STARTING")
    assert (await get_job(live_api, job_id))["queue"] is None
    set_pod(cluster, job_id, pod_status("Running"))
    assert (await callback(live_api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    await job_reaches(live_api, job_id, "RUNNING")
    await trainer_succeeds(live_api, cluster, job_id, token)
    result = await workflow_result(temporal_env, job_id)
    assert (result.state, result.attempt) == ("SUCCEEDED", 1)
    states = [e["data"]["to"] for e in await events(live_api, job_id) if e["type"] == "state"]
    assert states == ["VALIDATING", "STARTING", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED"]


async def test_a_trainer_that_beats_the_admission_news_may_report(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    kueue: KueuePlay,
    job_body: dict[str, Any],
    shapes_uri: str,
) -> None:
    """Kueue unsuspends the Job and the trainer's first heartbeat arrives before the worker's
    watch tells the backend: the job is still QUEUED, yet that trainer is the job's own (unlike
    a trainer the platform preempted back to the queue, which is refused)."""
    job_id = (await submit(live_api, job_body | {"dataset": shapes_uri, "gpus": 1}))["id"]
    token = await launched(cluster, job_id)
    workload = kueue.workload_of(job_id)
    kueue.queue_order(workload)
    await queued_at(live_api, job_id, 1)

    assert (await callback(live_api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    assert (await get_job(live_api, job_id))["state"] == "RUNNING"


async def test_kueue_preemption_ends_the_attempt_and_the_next_resumes_from_its_checkpoint(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    kueue: KueuePlay,
    temporal_env: WorkflowEnvironment,
    job_body: dict[str, Any],
    shapes_uri: str,
) -> None:
    low = (
        await submit(live_api, job_body | {"dataset": shapes_uri, "gpus": 1, "priority": "low"})
    )["id"]
    token = await launched(cluster, low)
    workload = kueue.workload_of(low)
    kueue.admit(low, workload)
    set_pod(cluster, low, pod_status("Running"))
    assert (await callback(live_api, low, "heartbeat", token, heartbeat(1))).status_code == 202
    await job_reaches(live_api, low, "RUNNING")
    checkpoint = f"{worker.attempt_dir(low, 1)}/run/weights/last.pt"
    saved = checkpoint_saved(1, checkpoint)
    assert (await callback(live_api, low, "event", token, saved)).status_code == 202

    # An urgent job arrives; Kueue evicts the low one to make room for it.
    urgent = (await submit(live_api, job_body | {"dataset": shapes_uri, "gpus": 1}))["id"]
    await launched(cluster, urgent)
    message = kueue.preempt(low, workload, by_job_uid=kueue.job_uid(urgent))

    disrupted = await event_of(live_api, low, "attempt_disrupted")
    assert disrupted["data"] == {
        "attempt": 1,
        "reason": "Preempted",
        "message": message,
        "by": urgent,
    }
    assert disrupted["message"].startswith(f"attempt 1 gave way to {urgent} (Preempted: ")

    async def deleted() -> bool | None:
        return True if job_deletions(cluster, low) else None

    await wait_until(deleted, "the delete of attempt 1's Job")
    await collect_garbage(cluster, low)
    await launched(cluster, low, attempt=2)
    env = {var["name"]: var.get("value") for var in trainer_container(cluster, low, 2)["env"]}
    assert env["TRAINYARD_RESUME_FROM"] == checkpoint
    # Its next attempt waits in Kueue's queue again, not counted as a failure.
    second = kueue.workload_of(low, attempt=2)
    kueue.queue_order(second)
    queued = await queued_at(live_api, low, 1)
    assert queued["attempt"] == 2
    retried = await event_of(live_api, low, "attempt_retried")
    assert retried["data"]["interrupted"] is True
