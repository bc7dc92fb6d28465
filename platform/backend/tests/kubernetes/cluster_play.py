"""The test's part in the Kubernetes scenarios: what the job controller, the kubelet and the
garbage collector would do to a trainer Job in kmock's emulator (which runs none of them),
and bounded waits on the emulator and on the backend's API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import kmock
import pytest

from trainyard_workflows.launchers.kubernetes_manifests import (
    CONTAINER_NAME,
    attempt_labels,
    attempt_selector,
    job_name,
)

from ..support import events, get_job

T = TypeVar("T")

NAMESPACE = "training"
TRAINER_IMAGE = "registry.example/trainer-ultralytics:1.2"
# Resources, not strings: the emulator's `key in objects` only matches parsed ones.
JOBS = kmock.resource("batch/v1/jobs")
PODS = kmock.resource("v1/pods")
SECRETS = kmock.resource("v1/secrets")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_POLL_S = 0.05


async def wait_until(
    check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 20.0
) -> T:
    """The first answer of `check` that is not None, asked every 50 ms for up to `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        answer = await check()
        if answer is not None:
            return answer
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(_POLL_S)


# --- the backend, as a user sees the job -----------------------------------------------------


async def job_reaches(api: httpx.AsyncClient, job_id: str, state: str) -> dict[str, Any]:
    """The job once it is in `state`; fails at once if it ends in another state."""

    async def check() -> dict[str, Any] | None:
        job = await get_job(api, job_id)
        if job["state"] == state:
            return job
        if job["state"] in TERMINAL:
            timeline = [(e["type"], e["message"]) for e in await events(api, job_id)]
            pytest.fail(f"job ended {job['state']} ({job['reason']}), not {state}: {timeline}")
        return None

    # The worker's whole loop (poll, report, workflow task) lies in between: on two loaded
    # cores (the suite runs beside the e2e group) that can take longer than a single wait.
    return await wait_until(check, f"job {job_id} to be {state}", timeout_s=60)


async def event_of(
    api: httpx.AsyncClient, job_id: str, type_: str, message: str | None = None
) -> dict[str, Any]:
    """The job's first event of `type_` (with exactly `message`, if given), once it exists."""

    async def check() -> dict[str, Any] | None:
        for event in await events(api, job_id):
            if event["type"] == type_ and message in (None, event["message"]):
                return event
        return None

    return await wait_until(check, f"a {type_} event {message or ''} of {job_id}")


# --- the cluster -------------------------------------------------------------------------------


async def launched(cluster: kmock.KubernetesEmulator, job_id: str, attempt: int = 1) -> str:
    """Wait for the worker to create the attempt's Job; the callback token from its Secret
    (what the kubelet hands the trainer as TRAINYARD_CALLBACK_TOKEN)."""
    name = job_name(job_id, attempt)

    def exists(kind: kmock.resource) -> bool:
        key = (kind, NAMESPACE, name)
        return key in cluster.objects and not cluster.objects[key].deleted

    async def check() -> str | None:
        if not (exists(JOBS) and exists(SECRETS)):
            return None
        token: str = cluster.objects[SECRETS, NAMESPACE, name]["stringData"][
            "TRAINYARD_CALLBACK_TOKEN"
        ]
        return token

    return await wait_until(check, f"the Job of {job_id}")


def trainer_container(
    cluster: kmock.KubernetesEmulator, job_id: str, attempt: int = 1
) -> dict[str, Any]:
    job = cluster.objects[JOBS, NAMESPACE, job_name(job_id, attempt)]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def pod_status(
    phase: str,
    *,
    exit_code: int | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A pod status as the kubelet reports it: running or terminated with `exit_code`."""
    state: dict[str, Any] = {"running": {}} if phase == "Running" else {}
    if exit_code is not None:
        reason = "Completed" if exit_code == 0 else "Error"
        state = {"terminated": {"exitCode": exit_code, "reason": reason}}
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if state:
        container = {"name": CONTAINER_NAME, "image": TRAINER_IMAGE, "imageID": ""}
        ready = "running" in state
        status["containerStatuses"] = [
            container | {"ready": ready, "restartCount": 0, "state": state}
        ]
    return status


def set_pod(
    cluster: kmock.KubernetesEmulator,
    job_id: str,
    status: dict[str, Any],
    suffix: str = "x1",
    created: str = "2026-01-01T00:00:00Z",
    attempt: int = 1,
) -> str:
    """Create or replace one of the Job's pods (the job controller, then the kubelet)."""
    name = f"{job_name(job_id, attempt)}-{suffix}"
    cluster.objects[PODS, NAMESPACE, name] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "creationTimestamp": created,
            "labels": attempt_labels(job_id, attempt) | {"job-name": job_name(job_id, attempt)},
        },
        "spec": {"containers": [{"name": CONTAINER_NAME, "image": TRAINER_IMAGE}]},
        "status": status,
    }
    return name


def finish_job(
    cluster: kmock.KubernetesEmulator,
    job_id: str,
    condition: str,
    reason: str = "",
    attempt: int = 1,
) -> None:
    """The job controller's verdict: condition `Complete` or `Failed`."""
    cluster.objects[JOBS, NAMESPACE, job_name(job_id, attempt)].patch(
        {"status": {"conditions": [{"type": condition, "status": "True", "reason": reason}]}}
    )


def job_deletions(
    cluster: kmock.KubernetesEmulator, job_id: str, attempt: int = 1
) -> list[kmock.Request]:
    """The DELETE requests the API server received for the attempt's Job."""
    name = job_name(job_id, attempt)
    return [
        request
        for request in cluster
        if request.method == "DELETE"
        and request.resource is not None
        and request.resource.plural == "jobs"
        and request.name == name
    ]


async def collect_garbage(cluster: kmock.KubernetesEmulator, job_id: str, attempt: int = 1) -> None:
    """The garbage collector after a foreground delete of the Job: its pods go, then the
    Secret it owns, then the foregroundDeletion finalizer comes off and the Job goes."""
    name = job_name(job_id, attempt)
    for (resource, _, pod_name), pod in list(cluster.objects.items()):
        if resource.plural == "pods" and pod_name.startswith(f"{name}-") and not pod.deleted:
            pod.delete()
    cluster.objects[SECRETS, NAMESPACE, name].delete()
    path = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}"
    response = await cluster.patch(path, json={"metadata": {"finalizers": []}})
    assert response.status == 200


async def remaining_objects(
    cluster: kmock.KubernetesEmulator, job_id: str, attempt: int = 1
) -> list[str]:
    """`kind/name` of everything of the attempt the API server still lists (by its labels)."""
    selector = {"labelSelector": attempt_selector(job_id, attempt)}
    found: list[str] = []
    for kind, path in [
        ("Job", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"),
        ("Pod", f"/api/v1/namespaces/{NAMESPACE}/pods"),
        ("Secret", f"/api/v1/namespaces/{NAMESPACE}/secrets"),
    ]:
        response = await cluster.get(path, params=selector)
        assert response.status == 200
        found += [f"{kind}/{item['metadata']['name']}" for item in (await response.json())["items"]]
    return found
