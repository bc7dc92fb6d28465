"""A training job on the production launcher, end to end: the real backend, the real Temporal
workflow and worker, and the KubernetesLauncher against kmock's emulator.

The test plays the cluster and the trainer: once the worker has created the attempt's Job it
reads the callback token from the Job's Secret (as the kubelet would hand it to the pod), sends
the trainer's callbacks over HTTP to the live backend and sets pod and Job statuses. Each
scenario runs on both tiers (the `settings` fixture): PostgreSQL adds about 4 s to the file.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from trainyard_testing.kubernetes import KubernetesApi
from trainyard_workflows.contracts import workflow_id_for
from trainyard_workflows.launchers.kubernetes_manifests import attempt_labels, job_name
from trainyard_workflows.outcomes import TrainingResult
from trainyard_workflows.settings import WorkerSettings

from ..support import DONE_SUCCEEDED, callback, checkpoint_saved, get_job, heartbeat, submit
from .cluster_play import (
    JOBS,
    NAMESPACE,
    TRAINER_IMAGE,
    collect_garbage,
    event_of,
    finish_job,
    job_deletions,
    job_reaches,
    launched,
    pod_status,
    remaining_objects,
    set_pod,
    trainer_container,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("kubernetes")

UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
PREEMPTED = "Preempted in order to admit critical pod"
_WORKFLOW_END_S = 30


@pytest.fixture
def gpu_job(job_body: dict[str, Any], shapes_uri: str) -> dict[str, Any]:
    return job_body | {"dataset": shapes_uri, "gpus": 1}


async def workflow_result(temporal_env: WorkflowEnvironment, job_id: str) -> TrainingResult:
    handle = temporal_env.client.get_workflow_handle(
        workflow_id_for(job_id), result_type=TrainingResult
    )
    return await asyncio.wait_for(handle.result(), _WORKFLOW_END_S)


async def trainer_runs(api: httpx.AsyncClient, cluster: KubernetesApi, job_id: str) -> str:
    """Play the start of a healthy attempt up to RUNNING; the attempt's callback token."""
    token = await launched(cluster, job_id)
    set_pod(cluster, job_id, pod_status("Running"))
    assert (await callback(api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    await job_reaches(api, job_id, "RUNNING")
    return token


async def trainer_succeeds(
    api: httpx.AsyncClient,
    cluster: KubernetesApi,
    job_id: str,
    token: str,
    pod: str = "x1",
    attempt: int = 1,
) -> dict[str, Any]:
    """The trainer reports done and exits 0: its pod succeeds, the Job completes."""
    # (Its files would be in its pod's output folder: none is reported here.)
    done = {**DONE_SUCCEEDED, "artifacts": {}}
    assert (await callback(api, job_id, "done", token, done)).status_code == 202
    succeeded = pod_status("Succeeded", exit_code=0)
    set_pod(cluster, job_id, succeeded, suffix=pod, attempt=attempt)
    finish_job(cluster, job_id, "Complete", attempt=attempt)
    return await job_reaches(api, job_id, "SUCCEEDED")


async def test_a_job_runs_as_a_kubernetes_job_and_succeeds(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    temporal_env: WorkflowEnvironment,
    gpu_job: dict[str, Any],
) -> None:
    job_id = (await submit(live_api, gpu_job))["id"]
    token = await launched(cluster, job_id)

    job = cluster.objects[JOBS, NAMESPACE, job_name(job_id, 1)]
    container = trainer_container(cluster, job_id)
    assert container["image"] == TRAINER_IMAGE
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert job["metadata"]["labels"] == attempt_labels(job_id, 1)
    assert job["spec"]["template"]["metadata"]["labels"] == attempt_labels(job_id, 1)
    env = {item["name"]: item for item in container["env"]}
    assert env["TRAINYARD_GPUS"]["value"] == "1"
    assert env["TRAINYARD_CALLBACK_URL"]["value"] == worker.trainer_callback_url
    # The token reaches the pod from the Secret only: the Job body names its key.
    assert "value" not in env["TRAINYARD_CALLBACK_TOKEN"]
    assert (await get_job(live_api, job_id))["state"] == "STARTING"

    set_pod(cluster, job_id, pod_status("Running"))
    assert (await callback(live_api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    await job_reaches(live_api, job_id, "RUNNING")
    final = await trainer_succeeds(live_api, cluster, job_id, token)

    assert final["result"]["metrics"] == DONE_SUCCEEDED["metrics"]
    result = await workflow_result(temporal_env, job_id)
    assert (result.state, result.attempt) == ("SUCCEEDED", 1)
    # A finished Job is kept for its logs (ttlSecondsAfterFinished), not deleted.
    assert job_deletions(cluster, job_id) == []


async def test_a_pod_waiting_for_a_node_is_reported_while_the_job_starts(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    temporal_env: WorkflowEnvironment,
    gpu_job: dict[str, Any],
) -> None:
    job_id = (await submit(live_api, gpu_job))["id"]
    token = await launched(cluster, job_id)
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": UNSCHEDULABLE,
    }
    set_pod(cluster, job_id, pod_status("Pending", conditions=[unschedulable]))

    # (Until the pod appears the attempt may first be reported as waiting for it.)
    message = f"attempt 1 is waiting to run: Unschedulable: {UNSCHEDULABLE}"
    waiting = await event_of(live_api, job_id, "attempt_pending", message)
    assert waiting["data"]["reasons"] == [{"reason": "Unschedulable", "message": UNSCHEDULABLE}]
    assert (await get_job(live_api, job_id))["state"] == "STARTING"

    set_pod(cluster, job_id, pod_status("Running"))
    assert (await callback(live_api, job_id, "heartbeat", token, heartbeat(1))).status_code == 202
    await job_reaches(live_api, job_id, "RUNNING")
    over = await event_of(live_api, job_id, "attempt_pending", "attempt 1 is no longer waiting")
    assert over["data"]["reasons"] == []

    await trainer_succeeds(live_api, cluster, job_id, token)
    assert (await workflow_result(temporal_env, job_id)).state == "SUCCEEDED"


async def test_a_trainer_exiting_with_a_contract_error_fails_the_job_with_its_exit_code(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    temporal_env: WorkflowEnvironment,
    gpu_job: dict[str, Any],
) -> None:
    job_id = (await submit(live_api, gpu_job))["id"]
    await launched(cluster, job_id)
    # A bad configuration: exit code 2 before any callback; podFailurePolicy fails the Job.
    pod = set_pod(cluster, job_id, pod_status("Failed", exit_code=2))
    # No kubelet behind the emulator: the test serves the log the API server would relay.
    message = "TRAINYARD_EPOCHS: must be an integer >= 1, got 'x'"
    cluster[f"get /api/v1/namespaces/{NAMESPACE}/pods/{pod}/log"] << f"{message}\n".encode()
    finish_job(cluster, job_id, "Failed", "PodFailurePolicy")

    final = await job_reaches(live_api, job_id, "FAILED")

    assert final["reason"] == f"trainer exited with code 2: {message}"
    result = await workflow_result(temporal_env, job_id)
    assert (result.state, result.attempt) == ("FAILED", 1)


async def test_cancel_deletes_the_kubernetes_job_and_waits_for_its_pods_to_go(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    temporal_env: WorkflowEnvironment,
    gpu_job: dict[str, Any],
) -> None:
    job_id = (await submit(live_api, gpu_job))["id"]
    await trainer_runs(live_api, cluster, job_id)

    response = await live_api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202

    async def deleted() -> bool | None:
        return True if job_deletions(cluster, job_id) else None

    await wait_until(deleted, "the Job's deletion")
    [delete] = job_deletions(cluster, job_id)
    assert delete.params["propagationPolicy"] == "Foreground"
    assert delete.params["gracePeriodSeconds"] == "1"
    # The kubelet stops the trainer (SIGTERM: 143) but the pod, hence the Job, is still there:
    # the job is not cancelled until the trainer is gone.
    set_pod(cluster, job_id, pod_status("Failed", exit_code=143))
    await asyncio.sleep(0.5)  # several polls of the stopping worker
    assert (await get_job(live_api, job_id))["state"] == "RUNNING"
    name = job_name(job_id, 1)
    assert await remaining_objects(cluster, job_id) == [
        f"Job/{name}",
        f"Pod/{name}-x1",
        f"Secret/{name}",
    ]

    await collect_garbage(cluster, job_id)
    await job_reaches(live_api, job_id, "CANCELLED")

    with pytest.raises(WorkflowFailureError):  # a cancelled workflow ends as cancelled
        await workflow_result(temporal_env, job_id)
    stopped = await event_of(live_api, job_id, "attempt_stopped")
    assert stopped["message"] == "attempt 1 stopped (exit code 143)"
    assert await remaining_objects(cluster, job_id) == []


async def test_a_preempted_pod_ends_its_attempt_and_the_next_resumes_without_failing_the_job(
    live_api: httpx.AsyncClient,
    worker: WorkerSettings,
    cluster: KubernetesApi,
    temporal_env: WorkflowEnvironment,
    gpu_job: dict[str, Any],
) -> None:
    job_id = (await submit(live_api, gpu_job))["id"]
    token = await trainer_runs(live_api, cluster, job_id)
    # In the attempt's own output (the worker's file storage: its folder in the pod).
    checkpoint = f"{worker.attempt_dir(job_id, 1)}/run/weights/last.pt"
    saved = checkpoint_saved(1, checkpoint)
    assert (await callback(live_api, job_id, "event", token, saved)).status_code == 202

    # The scheduler preempts the pod; the Job (podFailurePolicy: Ignore) makes another, which
    # would start training from scratch: the watch ends the attempt instead.
    preempted = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": PREEMPTED,
    }
    set_pod(cluster, job_id, pod_status("Failed", exit_code=143, conditions=[preempted]))
    set_pod(cluster, job_id, pod_status("Pending"), suffix="x2", created="2026-01-01T00:05:00Z")

    disrupted = await event_of(live_api, job_id, "attempt_disrupted")
    assert disrupted["message"] == (
        f"attempt 1 lost its pod to the cluster (PreemptionByScheduler: {PREEMPTED}); "
        "a new attempt resumes from the newest checkpoint, not counted as a failure"
    )
    assert disrupted["data"] == {
        "attempt": 1,
        "reason": "PreemptionByScheduler",
        "message": PREEMPTED,
    }

    async def deleted() -> bool | None:
        return True if job_deletions(cluster, job_id) else None

    await wait_until(deleted, "the delete of attempt 1's Job")
    await collect_garbage(cluster, job_id)
    second = await launched(cluster, job_id, attempt=2)
    env = {var["name"]: var.get("value") for var in trainer_container(cluster, job_id, 2)["env"]}
    assert env["TRAINYARD_RESUME_FROM"] == checkpoint
    # With what the trainer announced, which the new attempt checks before loading it.
    assert env["TRAINYARD_RESUME_SHA256"] == saved["data"]["sha256"]
    assert env["TRAINYARD_ATTEMPT"] == "2"
    retried = await event_of(live_api, job_id, "attempt_retried")
    assert retried["data"]["interrupted"] is True
    assert retried["message"] == (
        "attempt 1 was interrupted (its pod was taken by the cluster: PreemptionByScheduler: "
        f"{PREEMPTED}): starting attempt 2, an interruption is not counted as a failure; "
        "it resumes after epoch 1"
    )
    assert await remaining_objects(cluster, job_id, attempt=1) == []
    assert (await get_job(live_api, job_id))["state"] == "RUNNING"

    set_pod(cluster, job_id, pod_status("Running"), attempt=2)
    assert (await callback(live_api, job_id, "heartbeat", second, heartbeat(2))).status_code == 202
    # The first attempt's token is spent: its replacement pod could not report any more.
    assert (await callback(live_api, job_id, "heartbeat", token, heartbeat(2))).status_code == 403
    await trainer_succeeds(live_api, cluster, job_id, second, attempt=2)

    result = await workflow_result(temporal_env, job_id)
    assert (result.state, result.attempt) == ("SUCCEEDED", 2)
