"""Reading trainer Jobs and their pods: finished or not, exit code, why one is not running yet,
which ones the launcher made.

Pure functions over the client's models, so the launcher only fetches and these only interpret;
`launched_in` alone lists (the reconciler's question, asked of one namespace).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from kubernetes_asyncio.client import BatchV1Api, CoreV1Api, CoreV1Event, V1Job, V1ObjectMeta, V1Pod

from trainyard_workflows.launchers.base import LaunchedObject, PendingReason
from trainyard_workflows.launchers.kubernetes_manifests import (
    ANNOTATION_JOB_ID,
    CONTAINER_NAME,
    LABEL_ATTEMPT,
    MANAGED_SELECTOR,
)

COMPLETE = "Complete"
FAILED = "Failed"
_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
_EPOCH = datetime.min.replace(tzinfo=UTC)


def finished_condition(job: V1Job) -> str | None:
    """`Complete` or `Failed` once the Job is over, else None (still running or starting)."""
    conditions = job.status.conditions if job.status else None
    for condition in conditions or []:
        if condition.type in (COMPLETE, FAILED) and condition.status == "True":
            return str(condition.type)
    return None


def creation_order(pod: V1Pod) -> tuple[datetime, str]:
    """Sort key: pods in the order they were created (name breaks ties within a second)."""
    return (pod.metadata.creation_timestamp or _EPOCH, pod.metadata.name or "")


def newest_pod(pods: Iterable[V1Pod]) -> V1Pod | None:
    """The most recently created pod: the Job replaces a pod lost to preemption or a drain."""
    return max(pods, key=creation_order, default=None)


def is_terminal(pod: V1Pod) -> bool:
    return bool(pod.status and pod.status.phase in _TERMINAL_PHASES)


def trainer_exit_code(pod: V1Pod | None) -> int | None:
    """The trainer container's exit code once it terminated, else None."""
    if pod is None or pod.status is None:
        return None
    for status in pod.status.container_statuses or []:
        if status.name == CONTAINER_NAME and status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


def pod_pending_reasons(pod: V1Pod) -> list[PendingReason]:
    """Why `pod` is not running: not scheduled, a container that cannot start or is still
    being created (its image pulled); never empty for a pending pod, so a slow start is never
    mistaken for a trainer gone silent."""
    status = pod.status
    if status is None or status.phase != "Pending":
        return []
    reasons = [
        PendingReason(condition.reason or "Unschedulable", condition.message or "")
        for condition in status.conditions or []
        if condition.type == "PodScheduled" and condition.status == "False"
    ]
    for container in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason:
            reasons.append(PendingReason(waiting.reason, waiting.message or ""))
    return reasons or [PendingReason("Pending", "the pod waits to be scheduled and started")]


def pod_disruption(pod: V1Pod) -> PendingReason | None:
    """Why the cluster took `pod` away (preemption, eviction, a node drain), from its
    DisruptionTarget condition; None if it was not disrupted."""
    for condition in (pod.status.conditions if pod.status else None) or []:
        if condition.type == "DisruptionTarget" and condition.status == "True":
            return PendingReason(condition.reason or "DisruptionTarget", condition.message or "")
    return None


def failed_create_reason(job: V1Job, events: Iterable[CoreV1Event]) -> PendingReason | None:
    """The Job controller's newest refusal to create the pod (a quota exceeded, an admission
    webhook's veto), from the Job's events; None if there is none."""
    uid = job.metadata.uid if job.metadata else None
    refusals = [
        event
        for event in events
        if event.reason == "FailedCreate"
        and event.involved_object.kind == "Job"
        and event.involved_object.name == (job.metadata.name if job.metadata else None)
        # An earlier Job of the same name (deleted, then launched again) is not this one.
        and (uid is None or event.involved_object.uid in (None, uid))
    ]
    newest = max(refusals, key=_event_time, default=None)
    if newest is None:
        return None
    return PendingReason("FailedCreate", newest.message or "")


def _event_time(event: CoreV1Event) -> datetime:
    return (
        event.last_timestamp
        or event.event_time
        or (event.metadata.creation_timestamp if event.metadata else None)
        or _EPOCH
    )


def attempt_of(metadata: V1ObjectMeta) -> tuple[str, str, int] | None:
    """(name, job id, attempt) of a labelled object; None for one not made by the launcher."""
    job_id = (metadata.annotations or {}).get(ANNOTATION_JOB_ID)
    attempt = (metadata.labels or {}).get(LABEL_ATTEMPT, "")
    if not job_id or not attempt.isdigit():
        return None
    return metadata.name, job_id, int(attempt)


def tail_lines(text: str, lines: int) -> list[str]:
    """The last `lines` lines of a pod's log. Progress bars redraw a line with "\\r": only the
    last drawing of each line is kept."""
    split = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    if split and split[-1] == "":
        split.pop()
    return split[-lines:]


async def launched_in(core: CoreV1Api, batch: BatchV1Api, namespace: str) -> list[LaunchedObject]:
    """The launcher's Jobs and Secrets in `namespace` (by the managed-by label)."""
    jobs = await batch.list_namespaced_job(namespace, label_selector=MANAGED_SELECTOR)
    secrets = await core.list_namespaced_secret(namespace, label_selector=MANAGED_SELECTOR)
    found: list[LaunchedObject] = []
    for job in jobs.items or []:
        attempt = attempt_of(job.metadata)
        if attempt is not None:
            active = finished_condition(job) is None
            found.append(LaunchedObject("Job", namespace, *attempt, active=active))
    for secret in secrets.items or []:
        attempt = attempt_of(secret.metadata)
        if attempt is not None:
            owned = bool(secret.metadata.owner_references)
            found.append(LaunchedObject("Secret", namespace, *attempt, owned=owned))
    return found
