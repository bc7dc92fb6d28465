"""The Kubernetes objects of one attempt: a Secret with its secret variables and a batch/v1 Job.

Pure functions returning plain dicts in the API's JSON shape (camelCase keys), so they can be
read next to the Kubernetes documentation and validated against its schema in tests.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import PurePosixPath
from typing import Any

from trainyard_workflows.launchers.base import LaunchRequest, TrainerNotInstalledError
from trainyard_workflows.launchers.kubernetes_namespaces import namespace_for
from trainyard_workflows.settings import WorkerSettings

Manifest = dict[str, Any]

CONTAINER_NAME = "trainer"
MANAGED_BY = "trainyard"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_JOB_ID = "trainyard.dev/job-id"
LABEL_ATTEMPT = "trainyard.dev/attempt"
# The job id exactly (a label value may be a hashed stand-in): how the reconciler finds the job.
ANNOTATION_JOB_ID = "trainyard.dev/job-id"
GPU_RESOURCE = "nvidia.com/gpu"
# Kueue (TRAINYARD_K8S_KUEUE_QUEUE; launchers/kubernetes_kueue.py reads its Workloads): the
# Job's LocalQueue and WorkloadPriorityClass, `trainyard-<level>` (the chart creates them with
# the values of trainyard/admission/priorities.py).
KUEUE_GROUP = "kueue.x-k8s.io"
LABEL_KUEUE_QUEUE = f"{KUEUE_GROUP}/queue-name"
LABEL_KUEUE_PRIORITY_CLASS = f"{KUEUE_GROUP}/priority-class"
KUEUE_PRIORITY_CLASS_PREFIX = "trainyard-"
# The trainer's exit code for a bad configuration (docs/trainer-contract.md): retrying the same
# pod cannot help.
CONTRACT_ERROR_EXIT_CODE = 2
# Variables that go into the Secret; the Job body (readable by anyone who may list Jobs, and
# shown by `kubectl describe`) references them by key only.
SECRET_ENV_VARS = frozenset(
    {
        "TRAINYARD_CALLBACK_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        # The trace collector's headers may carry its credentials.
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    }
)
OUTPUT_VOLUME = "output"
# The root filesystem is read-only (a trainer runs user code): these are the only places it
# writes besides the output dir. /tmp for tempfile, torch.distributed and compile caches; HOME
# (the trainer images' user's, set explicitly so an image with another user writes there too)
# for ~/.cache, ~/.config (Ultralytics, matplotlib, Triton) and anything else a library keeps.
TMP_VOLUME = "tmp"
TMP_DIR = "/tmp"
HOME_VOLUME = "home"
HOME_DIR = "/home/trainer"

_MAX_NAME = 63  # DNS-1123 label: also the limit of the `job-name` label Kubernetes sets on pods
_NAME_PREFIX = "trainyard-"
_READABLE_JOB_ID = re.compile(r"^job_[0-9a-f]+$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def job_name(job_id: str, attempt: int) -> str:
    """The Job's (and its Secret's) name: `trainyard-job-<hex>-a<attempt>`.

    Deterministic, so a retried launch finds the Job it created. An id that would not make a
    valid or short enough name (or could collide once lowercased) gets a hash of itself instead.
    """
    suffix = f"-a{attempt}"
    if _READABLE_JOB_ID.fullmatch(job_id):
        name = f"{_NAME_PREFIX}{job_id.replace('_', '-')}{suffix}"
        if len(name) <= _MAX_NAME:
            return name
    digest = _digest(job_id)
    room = _MAX_NAME - len(_NAME_PREFIX) - len(digest) - len(suffix) - 1
    stem = re.sub(r"[^a-z0-9]+", "-", job_id.lower())[:room].strip("-")
    return f"{_NAME_PREFIX}{stem + '-' if stem else ''}{digest}{suffix}"


def label_value(value: str) -> str:
    """`value` if it is a valid label value, else a readable prefix of it plus its hash."""
    if _LABEL_VALUE.fullmatch(value):
        return value
    digest = _digest(value)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[: _MAX_NAME - len(digest) - 1]
    stem = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", stem)
    return f"{stem}-{digest}" if stem else digest


def attempt_labels(job_id: str, attempt: int) -> dict[str, str]:
    """Labels of the Job, its pods and its Secret; the pods are found again by them."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "trainer",
        LABEL_JOB_ID: label_value(job_id),
        LABEL_ATTEMPT: str(attempt),
    }


def attempt_metadata(name: str, namespace: str, job_id: str, attempt: int) -> Manifest:
    """The metadata of the attempt's Job and Secret."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": attempt_labels(job_id, attempt),
        "annotations": {ANNOTATION_JOB_ID: job_id},
    }


MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def attempt_selector(job_id: str, attempt: int) -> str:
    """The label selector of the attempt's pods."""
    return ",".join(f"{key}={value}" for key, value in attempt_labels(job_id, attempt).items())


def trainer_image(framework: str, images: dict[str, str]) -> str:
    """The image of `framework`'s trainer; raises TrainerNotInstalledError if none is set."""
    image = images.get(framework)
    if not image:
        configured = ", ".join(sorted(images)) or "none"
        raise TrainerNotInstalledError(
            f"no trainer image for framework '{framework}' (configured: {configured}); "
            f"add it to TRAINYARD_K8S_IMAGES"
        )
    return image


def secret_manifest(request: LaunchRequest, namespace: str) -> Manifest:
    """The Secret holding the attempt's secret variables (callback token, S3 credentials)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": attempt_metadata(
            job_name(request.job_id, request.attempt), namespace, request.job_id, request.attempt
        ),
        "stringData": {key: value for key, value in request.env.items() if key in SECRET_ENV_VARS},
    }


def owner_reference(name: str, uid: str) -> Manifest:
    """Makes the Secret a dependent of the Job: deleting the Job deletes the Secret."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": uid,
        "controller": False,
        "blockOwnerDeletion": True,
    }


def _env(request: LaunchRequest, secret_name: str) -> list[Manifest]:
    values = dict(request.env)
    # The GPU count granted by the resource limit is the one the trainer may use.
    values["TRAINYARD_GPUS"] = str(request.gpus)
    values["HOME"] = HOME_DIR
    env: list[Manifest] = []
    for key in sorted(values):
        if key in SECRET_ENV_VARS:
            reference = {"secretKeyRef": {"name": secret_name, "key": key}}
            env.append({"name": key, "valueFrom": reference})
        else:
            env.append({"name": key, "value": values[key]})
    return env


def _local_output_dir(request: LaunchRequest) -> str | None:
    output_dir = request.env.get("TRAINYARD_OUTPUT_DIR", "")
    if "://" in output_dir or not PurePosixPath(output_dir).is_absolute():
        return None
    return str(PurePosixPath(output_dir))


def _pod_failure_policy() -> Manifest:
    return {
        "rules": [
            # A bad configuration fails the same way on every pod: end the Job now.
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": [CONTRACT_ERROR_EXIT_CODE],
                },
            },
            # Preemption, eviction, a node drain: not the trainer's fault, so the pod is replaced
            # without counting against backoffLimit 0.
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def pod_security_context(settings: WorkerSettings) -> Manifest:
    """Who the trainer runs as: a fixed unprivileged user (the images' own, by default), which
    also owns the scratch volumes, under the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.k8s_run_as_user,
        "runAsGroup": settings.k8s_run_as_group,
        "fsGroup": settings.k8s_run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """No way up from the trainer's user: no setuid gain, no capability, nothing written to the
    image (the volumes of `_scratch_volumes` are the writable places)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _scratch_volumes(request: LaunchRequest) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, volumeMounts): /tmp, HOME and the output dir, each an emptyDir."""
    mounts = {TMP_VOLUME: TMP_DIR, HOME_VOLUME: HOME_DIR}
    output_dir = _local_output_dir(request)
    if output_dir is not None and output_dir not in mounts.values():
        # The worker's attempt dir does not exist in the pod; give the trainer a scratch dir at
        # the same path (artifacts outlive the pod only through TRAINYARD_OUTPUT_URI).
        mounts[OUTPUT_VOLUME] = output_dir
    volumes = [{"name": name, "emptyDir": {}} for name in mounts]
    volume_mounts = [{"name": name, "mountPath": path} for name, path in mounts.items()]
    return volumes, volume_mounts


def job_manifest(request: LaunchRequest, settings: WorkerSettings) -> Manifest:
    """The batch/v1 Job running one attempt: one pod, never restarted in place (a failed
    attempt is retried by the workflow as the next attempt). Its namespace is its project's."""
    name = job_name(request.job_id, request.attempt)
    namespace = namespace_for(settings, request.project_slug)
    labels = attempt_labels(request.job_id, request.attempt)
    container: Manifest = {
        "name": CONTAINER_NAME,
        "image": trainer_image(request.framework, settings.k8s_images),
        "env": _env(request, name),
        "securityContext": container_security_context(),
    }
    if request.gpus > 0:
        container["resources"] = {"limits": {GPU_RESOURCE: str(request.gpus)}}
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": math.ceil(settings.stop_grace_s),
        # Trainers talk to the platform over HTTP only, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(settings),
        "containers": [container],
    }
    pod_spec["volumes"], container["volumeMounts"] = _scratch_volumes(request)
    if settings.k8s_node_selector:
        pod_spec["nodeSelector"] = dict(settings.k8s_node_selector)
    if settings.k8s_tolerations:
        pod_spec["tolerations"] = [dict(toleration) for toleration in settings.k8s_tolerations]
    if settings.k8s_priority_class:
        pod_spec["priorityClassName"] = settings.k8s_priority_class
    if settings.k8s_service_account:
        pod_spec["serviceAccountName"] = settings.k8s_service_account
    time_limit_s = request.time_limit_s or settings.k8s_default_time_limit_s
    metadata = attempt_metadata(name, namespace, request.job_id, request.attempt)
    admission: Manifest = {}
    if settings.k8s_kueue_queue:
        # Created suspended: Kueue unsuspends it once its ClusterQueue admits it.
        admission = {"suspend": True}
        metadata["labels"] |= {
            LABEL_KUEUE_QUEUE: settings.k8s_kueue_queue,
            LABEL_KUEUE_PRIORITY_CLASS: KUEUE_PRIORITY_CLASS_PREFIX
            + (request.priority or "normal"),
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            **admission,
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(time_limit_s)),
            "ttlSecondsAfterFinished": settings.k8s_ttl_seconds_after_finished,
            "podFailurePolicy": _pod_failure_policy(),
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
