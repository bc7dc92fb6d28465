"""The Kubernetes launcher against kmock's KubernetesEmulator, a real HTTP API server.

The emulator stores objects but runs no controllers and no kubelet, so the tests play their
part: they create the Job's pods, set pod and Job statuses, write events, serve pod logs and
do the garbage collector's work after a foreground deletion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from trainyard_workflows.launchers import AttemptHandle, LaunchRequest, TrainerNotInstalledError
from trainyard_workflows.launchers.base import AttemptStatus, PendingReason
from trainyard_workflows.launchers.factory import build_launcher
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.launchers.kubernetes_manifests import (
    attempt_labels,
    job_manifest,
    job_name,
)
from trainyard_workflows.launchers.launch_span import LAUNCH_SPAN
from trainyard_workflows.settings import WorkerSettings

NS = "training"
JOB_ID = "job_0123456789abcdef0123456789abcdef"
NAME = job_name(JOB_ID, 1)
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
OUTPUT_URI = f"s3://bucket/root/jobs/{JOB_ID}/attempt-1"
ENV = {
    "TRAINYARD_JOB_ID": JOB_ID,
    "TRAINYARD_ATTEMPT": "1",
    "TRAINYARD_CALLBACK_TOKEN": "token-1",
    "TRAINYARD_OUTPUT_DIR": f"/data/jobs/{JOB_ID}/attempt-1",
    "TRAINYARD_OUTPUT_URI": OUTPUT_URI,
    "TRAINYARD_GPUS": "1",
    "AWS_SECRET_ACCESS_KEY": "s3-secret",
}
REQUEST = LaunchRequest(
    job_id=JOB_ID,
    attempt=1,
    framework="ultralytics",
    output_dir=ENV["TRAINYARD_OUTPUT_DIR"],
    env=ENV,
    gpus=1,
)
SETTINGS = WorkerSettings(
    launcher="kubernetes",
    k8s_namespace=NS,
    k8s_images={"ultralytics": "registry.example/trainer-ultralytics:1.2"},
    stop_grace_s=5,
)


LauncherFactory = Callable[..., KubernetesLauncher]


@pytest.fixture
async def make_launcher(cluster: kmock.KubernetesEmulator) -> AsyncIterator[LauncherFactory]:
    launchers: list[KubernetesLauncher] = []

    async def client() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    def make(**options: Any) -> KubernetesLauncher:
        # observation_s 0: these tests change the cluster between two questions and expect
        # the second answer to see it (a watch poll shares one observation; tested apart).
        defaults = {"poll_s": 0.01, "observation_s": 0.0}
        launcher = KubernetesLauncher(SETTINGS, client, **(defaults | options))
        launchers.append(launcher)
        return launcher

    yield make
    for launcher in launchers:
        await launcher.aclose()


@pytest.fixture
def launcher(make_launcher: LauncherFactory) -> KubernetesLauncher:
    return make_launcher()


# --- the parts of the job controller and the kubelet -------------------------------------


def container_status(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "trainer",
        "image": "registry.example/trainer-ultralytics:1.2",
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def add_pod(
    cluster: kmock.KubernetesEmulator,
    name: str,
    *,
    created: str = "2026-01-01T00:00:00Z",
    phase: str = "Running",
    state: dict[str, Any] | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> None:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [container_status(state)]
    cluster.objects[PODS, NS, name] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": created,
            "labels": attempt_labels(JOB_ID, 1) | {"job-name": NAME},
        },
        "spec": {"containers": [{"name": "trainer", "image": "trainer"}]},
        "status": status,
    }


def terminated(exit_code: int) -> dict[str, Any]:
    return {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}}


def finish_job(cluster: kmock.KubernetesEmulator, condition: str, reason: str = "") -> None:
    cluster.objects[JOBS, NS, NAME].patch(
        {"status": {"conditions": [{"type": condition, "status": "True", "reason": reason}]}}
    )


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def sent(cluster: kmock.KubernetesEmulator, method: str, plural: str) -> list[kmock.Request]:
    return [
        request
        for request in cluster
        if request.method == method and request.resource and request.resource.plural == plural
    ]


async def launched(launcher: KubernetesLauncher) -> AttemptHandle:
    return await launcher.launch(REQUEST)


def container_env(job: Any) -> dict[str, Any]:
    """The trainer container's env: a value, or where it comes from (`valueFrom`)."""
    return {
        item["name"]: item.get("value", item.get("valueFrom"))
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }


# --- launch --------------------------------------------------------------------------------


async def test_launch_creates_the_secret_and_the_job_and_the_job_owns_the_secret(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)

    job = cluster.objects[JOBS, NS, NAME]
    secret = cluster.objects[SECRETS, NS, NAME]
    # Plus the launch span's trace context (test_the_job_carries_the_launch_spans_trace_context).
    traced = replace(REQUEST, env={**ENV, "TRACEPARENT": container_env(job)["TRACEPARENT"]})
    assert job["spec"] == job_manifest(traced, SETTINGS)["spec"]
    assert job["metadata"]["labels"] == attempt_labels(JOB_ID, 1)
    assert secret["stringData"] == {
        "TRAINYARD_CALLBACK_TOKEN": "token-1",
        "AWS_SECRET_ACCESS_KEY": "s3-secret",
    }
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": NAME,
            "uid": job["metadata"]["uid"],
            "controller": False,
            "blockOwnerDeletion": True,
        }
    ]
    # The Secret exists before the pod can need it.
    assert [(r.method, r.resource.plural if r.resource else "") for r in cluster] == [
        ("POST", "secrets"),
        ("POST", "jobs"),
        ("PATCH", "secrets"),
    ]
    assert (handle.namespace, handle.name, handle.pid, handle.log_path) == (NS, NAME, 0, "")
    assert handle.output_dir == OUTPUT_URI
    assert (handle.job_id, handle.attempt) == (JOB_ID, 1)


async def test_the_job_carries_the_launch_spans_trace_context_and_the_exporter_settings(
    cluster: kmock.KubernetesEmulator,
    launcher: KubernetesLauncher,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer collector-secret")

    with trace.get_tracer(__name__).start_as_current_span(
        "RunActivity:launch_trainer", kind=trace.SpanKind.SERVER
    ) as run:
        await launched(launcher)

    env = container_env(cluster.objects[JOBS, NS, NAME])
    (launch,) = [span for span in spans.get_finished_spans() if span.name == LAUNCH_SPAN]
    assert launch.context is not None
    assert launch.parent is not None
    assert launch.parent.span_id == run.get_span_context().span_id
    trace_id = format_trace_id(run.get_span_context().trace_id)
    version, trace_id_sent, parent_id, flags = env["TRACEPARENT"].split("-")
    assert (version, trace_id_sent) == ("00", trace_id)
    assert parent_id == format_span_id(launch.context.span_id)
    assert int(flags, 16) & 1  # sampled
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://collector:4318/v1/traces"
    # The collector's headers may hold its credentials: in the Secret, referenced by key.
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {
        "secretKeyRef": {"name": NAME, "key": "OTEL_EXPORTER_OTLP_HEADERS"}
    }
    secret = cluster.objects[SECRETS, NS, NAME]
    assert (
        secret["stringData"]["OTEL_EXPORTER_OTLP_HEADERS"]
        == "authorization=Bearer collector-secret"
    )


async def test_launching_twice_makes_one_job_and_returns_its_handle(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    first = await launched(launcher)
    second = await launched(launcher)

    assert (second.namespace, second.name) == (first.namespace, first.name)
    assert len(cluster.objects[JOBS, NS, NAME].history) == 1  # created once, never replaced
    assert len(sent(cluster, "POST", "jobs")) == 2  # the second answered 409 AlreadyExists
    created = cluster.objects[JOBS, NS, NAME]["metadata"]["creationTimestamp"]
    assert second.launched_at == datetime.fromisoformat(created).timestamp()
    owners = cluster.objects[SECRETS, NS, NAME]["metadata"]["ownerReferences"]
    assert [owner["uid"] for owner in owners] == [
        cluster.objects[JOBS, NS, NAME]["metadata"]["uid"]
    ]


async def test_an_unknown_framework_fails_before_anything_is_created(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    request = LaunchRequest(job_id=JOB_ID, attempt=1, framework="timm", output_dir="/data", env=ENV)

    with pytest.raises(TrainerNotInstalledError, match=r"'timm'.*configured: ultralytics"):
        await launcher.launch(request)
    assert list(cluster) == []


# --- status --------------------------------------------------------------------------------


async def test_status_is_running_until_the_job_completes(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    assert await launcher.status(handle) == AttemptStatus(running=True)

    add_pod(cluster, f"{NAME}-x1", state={"running": {}})
    assert await launcher.status(handle) == AttemptStatus(running=True)

    finish_job(cluster, "Complete")
    assert await launcher.status(handle) == AttemptStatus(running=False, exit_code=0)


async def test_a_failed_job_reports_the_exit_code_of_its_newest_pod(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    # Preempted first (ignored by the pod failure policy), then the replacement failed.
    add_pod(
        cluster,
        f"{NAME}-old",
        created="2026-01-01T00:00:00Z",
        phase="Failed",
        state=terminated(137),
    )
    add_pod(
        cluster, f"{NAME}-new", created="2026-01-01T00:05:00Z", phase="Failed", state=terminated(1)
    )
    finish_job(cluster, "Failed", "BackoffLimitExceeded")

    assert await launcher.status(handle) == AttemptStatus(running=False, exit_code=1)


async def test_a_trainer_that_fails_between_the_pod_list_and_the_job_read_has_its_exit_code(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    add_pod(cluster, f"{NAME}-x1", state={"running": {}})

    def trainer_fails_now() -> None:
        # Just before the API server answers the read of the Job: the pods were listed running.
        cluster.objects[PODS, NS, f"{NAME}-x1"].patch(
            {"status": {"phase": "Failed", "containerStatuses": [container_status(terminated(2))]}}
        )
        finish_job(cluster, "Failed", "PodFailurePolicy")

    cluster[f"get /apis/batch/v1/namespaces/{NS}/jobs/{NAME}"] << trainer_fails_now

    assert await launcher.status(handle) == AttemptStatus(running=False, exit_code=2)


async def test_a_failed_job_whose_trainer_never_ended_has_no_exit_code(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    add_pod(cluster, f"{NAME}-x1", phase="Pending", state={"waiting": {"reason": "ErrImagePull"}})
    finish_job(cluster, "Failed", "DeadlineExceeded")

    assert await launcher.status(handle) == AttemptStatus(running=False, exit_code=None)


async def test_a_job_that_no_longer_exists_is_not_running(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    cluster.objects[JOBS, NS, NAME].delete()  # e.g. removed by ttlSecondsAfterFinished

    assert await launcher.status(handle) == AttemptStatus(running=False, exit_code=None)


# --- stop ----------------------------------------------------------------------------------


def delete_pods(cluster: kmock.KubernetesEmulator) -> None:
    """The garbage collector's first step of a foreground deletion: the Job's pods go."""
    for resource, namespace, name in list(cluster.objects):
        pod = cluster.objects[resource, namespace, name]
        if resource.plural == "pods" and name.startswith(NAME) and not pod.deleted:
            pod.delete()


async def release_job(cluster: kmock.KubernetesEmulator) -> None:
    """Its last step: the foregroundDeletion finalizer comes off and the API server drops it."""
    path = f"/apis/batch/v1/namespaces/{NS}/jobs/{NAME}"
    response = await cluster.patch(path, json={"metadata": {"finalizers": []}})
    assert response.status == 200


async def test_stop_deletes_the_job_in_the_foreground_and_returns_once_its_pods_are_gone(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    add_pod(cluster, f"{NAME}-x1", state={"running": {}})

    stopping = asyncio.create_task(launcher.stop(handle, grace_s=3))
    try:
        await eventually(lambda: bool(sent(cluster, "DELETE", "jobs")))
        (delete,) = sent(cluster, "DELETE", "jobs")
        assert delete.name == NAME
        assert delete.params["propagationPolicy"] == "Foreground"
        assert delete.params["gracePeriodSeconds"] == "3"
        assert cluster.objects[JOBS, NS, NAME]["metadata"]["deletionTimestamp"]

        # The kubelet ends the trainer (SIGTERM: 143); its pod is still there, so is the Job.
        cluster.objects[PODS, NS, f"{NAME}-x1"].patch(
            {
                "status": {
                    "phase": "Failed",
                    "containerStatuses": [container_status(terminated(143))],
                }
            }
        )
        await asyncio.sleep(0.1)  # ten polls
        assert not stopping.done()
        delete_pods(cluster)
        await asyncio.sleep(0.1)
        assert not stopping.done()  # the Job itself is not gone yet
        await release_job(cluster)

        assert await asyncio.wait_for(stopping, 5) == AttemptStatus(running=False, exit_code=143)
    finally:
        stopping.cancel()


async def test_stop_reports_a_job_whose_pods_outlive_the_wait_as_running(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(gone_margin_s=0.2)
    handle = await launched(launcher)
    add_pod(cluster, f"{NAME}-x1", state={"running": {}})  # a kubelet that never answers

    assert await launcher.stop(handle, grace_s=0) == AttemptStatus(running=True)


async def test_stopping_a_gone_job_just_reports_not_running(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = AttemptHandle(JOB_ID, 1, 0, OUTPUT_URI, "", 0.0, namespace=NS, name=NAME)

    assert await launcher.stop(handle, grace_s=3) == AttemptStatus(running=False)
    assert sent(cluster, "DELETE", "jobs") == []


async def test_stopping_a_finished_job_keeps_it_for_its_logs(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    finish_job(cluster, "Complete")

    assert await launcher.stop(handle, grace_s=3) == AttemptStatus(running=False, exit_code=0)
    assert sent(cluster, "DELETE", "jobs") == []


# --- log_tail ------------------------------------------------------------------------------


async def test_log_tail_reads_the_trainer_log_of_the_newest_pod(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    add_pod(cluster, f"{NAME}-old", created="2026-01-01T00:00:00Z", state=terminated(137))
    add_pod(cluster, f"{NAME}-new", created="2026-01-01T00:05:00Z", state={"running": {}})
    # No kubelet behind the emulator: the test serves the log the API server would relay.
    cluster[f"get /api/v1/namespaces/{NS}/pods/{NAME}-new/log"] << (
        b"epoch 1/2: 10%\repoch 1/2: 100%\n42\n"
    )

    assert await launcher.log_tail(handle, 20) == ["epoch 1/2: 100%", "42"]
    (request,) = [r for r in cluster if r.subresource == "log"]
    assert request.params == {"container": "trainer", "tailLines": "20"}


async def test_log_tail_is_empty_without_a_pod_or_a_started_container(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    assert await launcher.log_tail(handle, 20) == []

    add_pod(cluster, f"{NAME}-x1", phase="Pending", state={"waiting": {"reason": "Pulling"}})
    cluster[f"get /api/v1/namespaces/{NS}/pods/{NAME}-x1/log"] << kmock.KubernetesError(
        status=400, reason="BadRequest", message="container trainer is waiting to start"
    )
    assert await launcher.log_tail(handle, 20) == []


# --- pending_reasons -----------------------------------------------------------------------


async def test_pending_reasons_report_an_unschedulable_pod(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    add_pod(
        cluster,
        f"{NAME}-x1",
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
        ],
    )

    assert await launcher.pending_reasons(handle) == [PendingReason("Unschedulable", message)]


async def test_pending_reasons_report_an_image_that_cannot_be_pulled(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    message = 'Back-off pulling image "registry.example/trainer-ultralytics:1.2"'
    add_pod(
        cluster,
        f"{NAME}-x1",
        phase="Pending",
        state={"waiting": {"reason": "ImagePullBackOff", "message": message}},
    )

    assert await launcher.pending_reasons(handle) == [PendingReason("ImagePullBackOff", message)]


async def test_pending_reasons_report_a_quota_refusal_from_the_jobs_events(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    uid = cluster.objects[JOBS, NS, NAME]["metadata"]["uid"]
    refusal = f'Error creating: pods "{NAME}-x1" is forbidden: exceeded quota: gpu, requested: ...'

    def event(name: str, involved: dict[str, str], reason: str, message: str, at: str) -> None:
        cluster.objects[EVENTS, NS, name] = {
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"namespace": NS} | involved,
            "reason": reason,
            "message": message,
            "type": "Warning",
            "lastTimestamp": at,
        }

    event(
        "e1",
        {"kind": "Job", "name": NAME, "uid": uid},
        "FailedCreate",
        refusal,
        "2026-01-01T00:01:00Z",
    )
    event(
        "e2",
        {"kind": "Job", "name": NAME, "uid": "an-earlier-job"},
        "FailedCreate",
        "stale",
        "2026-01-01T00:09:00Z",
    )
    event(
        "e3",
        {"kind": "Job", "name": "someone-else", "uid": "x"},
        "FailedCreate",
        "other",
        "2026-01-01T00:09:00Z",
    )
    event(
        "e4",
        {"kind": "Job", "name": NAME, "uid": uid},
        "SuccessfulCreate",
        "created",
        "2026-01-01T00:09:00Z",
    )

    assert await launcher.pending_reasons(handle) == [PendingReason("FailedCreate", refusal)]


async def test_a_starting_attempt_waits_until_its_pod_runs_then_not(
    cluster: kmock.KubernetesEmulator, launcher: KubernetesLauncher
) -> None:
    handle = await launched(launcher)
    not_yet = PendingReason("Pending", "the Job has not created its pod yet")
    assert await launcher.pending_reasons(handle) == [not_yet]
    add_pod(cluster, f"{NAME}-x1", phase="Pending")
    unscheduled = PendingReason("Pending", "the pod waits to be scheduled and started")
    assert await launcher.pending_reasons(handle) == [unscheduled]
    # Pulling the image: a slow start, never to be taken for a silent trainer.
    cluster.objects[PODS, NS, f"{NAME}-x1"].patch(
        {
            "status": {
                "containerStatuses": [
                    container_status({"waiting": {"reason": "ContainerCreating"}})
                ]
            }
        }
    )
    assert await launcher.pending_reasons(handle) == [PendingReason("ContainerCreating", "")]

    cluster.objects[PODS, NS, f"{NAME}-x1"].patch(
        {"status": {"phase": "Running", "containerStatuses": [container_status({"running": {}})]}}
    )
    assert await launcher.pending_reasons(handle) == []


async def test_one_watch_poll_reads_the_job_once_and_lists_its_pods_once(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(observation_s=60.0)
    handle = await launched(launcher)
    add_pod(cluster, f"{NAME}-x1", phase="Pending")
    jobs_before, pods_before = len(sent(cluster, "GET", "jobs")), len(sent(cluster, "GET", "pods"))

    # What the watch asks on every poll.
    await launcher.disruptions(handle)
    pending = await launcher.pending_reasons(handle)
    status = await launcher.status(handle)

    assert pending == [PendingReason("Pending", "the pod waits to be scheduled and started")]
    assert status == AttemptStatus(running=True)
    assert len(sent(cluster, "GET", "jobs")) - jobs_before == 1
    assert len(sent(cluster, "GET", "pods")) - pods_before == 1


async def test_stopping_forgets_the_observation_so_the_end_is_seen_at_once(
    cluster: kmock.KubernetesEmulator, make_launcher: LauncherFactory
) -> None:
    launcher = make_launcher(observation_s=60.0)
    handle = await launched(launcher)
    assert (await launcher.status(handle)).running

    stopping = asyncio.create_task(launcher.stop(handle, grace_s=0))
    await eventually(lambda: bool(sent(cluster, "DELETE", "jobs")))
    del cluster.objects[JOBS, NS, NAME]  # the garbage collector's part
    await stopping

    assert await launcher.status(handle) == AttemptStatus(running=False)


# --- client and factory --------------------------------------------------------------------


async def test_the_launcher_reaches_the_cluster_of_the_configured_kubeconfig(
    cluster: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": str(cluster.url).rstrip("/")}}],
                "users": [{"name": "u", "user": {"token": "worker-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    settings = SETTINGS.model_copy(update={"k8s_kubeconfig": kubeconfig})
    launcher = build_launcher(settings)
    assert isinstance(launcher, KubernetesLauncher)
    try:
        handle = await launcher.launch(REQUEST)
    finally:
        await launcher.aclose()

    assert handle.name == NAME
    assert {r.headers.get("Authorization") for r in cluster} == {"Bearer worker-token"}
