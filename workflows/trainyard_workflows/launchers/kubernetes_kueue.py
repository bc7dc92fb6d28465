"""Kueue admits trainer Jobs (TRAINYARD_K8S_KUEUE_QUEUE): what the Job carries for it, and
what its Workload says while Kueue holds the attempt or after Kueue took it away.

The Job is created suspended in its namespace's LocalQueue with its job's priority class;
Kueue makes a Workload for it, admits it against its ClusterQueue's quota (unsuspending the
Job) or keeps it pending, and may evict it later (preemption by a higher-priority workload).
The pure functions read Workloads as plain dicts (the API's JSON); `KueueReader` fetches them
and the workload's place from Kueue's visibility API. Needs, in each training namespace:
workloads (list) in kueue.x-k8s.io and localqueues/pendingworkloads (get) in
visibility.kueue.x-k8s.io (the chart's trainer-launcher Role).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from kubernetes_asyncio.client import ApiClient, BatchV1Api, CustomObjectsApi, V1Job
from kubernetes_asyncio.client.rest import ApiException

from trainyard_workflows.internal_api import ExternalQueuePlace
from trainyard_workflows.launchers.base import PendingReason
from trainyard_workflows.launchers.kubernetes_manifests import (
    GPU_RESOURCE,
    KUEUE_GROUP,
    MANAGED_SELECTOR,
)
from trainyard_workflows.launchers.kubernetes_status import attempt_of

logger = logging.getLogger(__name__)

VERSION = "v1beta2"
VISIBILITY_GROUP = "visibility.kueue.x-k8s.io"
LABEL_JOB_UID = f"{KUEUE_GROUP}/job-uid"
_PENDING_PATH = (
    f"/apis/{VISIBILITY_GROUP}/{VERSION}/namespaces/{{namespace}}/localqueues/{{queue}}/"
    "pendingworkloads"
)
# Kueue names the workload it made room for in its eviction message.
_PREEMPTOR_JOB_UID = re.compile(r"JobUID: ([0-9a-fA-F-]{8,})")

Workload = Mapping[str, Any]


def _condition(workload: Workload, type_: str) -> Mapping[str, Any] | None:
    for condition in workload.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def _is_true(workload: Workload, type_: str) -> bool:
    condition = _condition(workload, type_)
    return condition is not None and condition.get("status") == "True"


def is_admitted(workload: Workload) -> bool:
    return _is_true(workload, "Admitted")


def waiting_reason(workload: Workload | None, queue: str) -> str:
    """Why Kueue holds the workload, in Kueue's words (its QuotaReserved condition)."""
    if workload is None:
        return f"Kueue has not taken the Job into LocalQueue {queue} yet"
    condition = _condition(workload, "QuotaReserved") or {}
    message = str(condition.get("message") or "waiting for quota")
    return f"Kueue, LocalQueue {queue}: {message}"


def eviction(workload: Workload | None) -> PendingReason | None:
    """Why Kueue took an admitted attempt away (preempted, deactivated, pods not ready in time);
    None if it did not. `by` is filled in by the reader (the preemptor's Job uid → job id)."""
    if workload is None or not _is_true(workload, "Evicted"):
        return None
    condition = _condition(workload, "Evicted") or {}
    return PendingReason(
        str(condition.get("reason") or "Evicted"), str(condition.get("message") or "")
    )


def preemptor_job_uid(workload: Workload) -> str | None:
    """The uid of the Job whose workload this one was preempted for, from Kueue's message."""
    for type_ in ("Preempted", "Evicted"):
        condition = _condition(workload, type_)
        if condition is not None:
            found = _PREEMPTOR_JOB_UID.search(str(condition.get("message") or ""))
            if found:
                return found.group(1)
    return None


def workload_gpus(workload: Workload, gpu_resource: str) -> int:
    """The GPUs a workload asks for: each pod set's count times its containers' GPUs."""
    total = 0
    for pod_set in workload.get("spec", {}).get("podSets") or []:
        containers = pod_set.get("template", {}).get("spec", {}).get("containers") or []
        per_pod = 0
        for container in containers:
            resources = container.get("resources") or {}
            asked = (resources.get("requests") or {}).get(gpu_resource) or (
                resources.get("limits") or {}
            ).get(gpu_resource)
            per_pod += int(str(asked or 0))
        total += per_pod * int(pod_set.get("count", 1))
    return total


def place_in_queue(
    workload: Workload,
    pending: Sequence[Mapping[str, Any]] | None,
    neighbours: Mapping[str, Workload],
    *,
    attempt: int,
    queue: str,
    gpu_resource: str,
) -> ExternalQueuePlace:
    """Where Kueue holds `workload`: its 1-based place in the LocalQueue's pending list
    (`pending`, the visibility API's items; None when that API is not served: place 0), the
    GPUs of the workloads ahead of it (`neighbours`: the namespace's workloads by name), and
    Kueue's reason."""
    name = workload.get("metadata", {}).get("name")
    position = 0
    gpus_ahead = 0
    for item in pending or []:
        item_name = item.get("metadata", {}).get("name")
        if item_name == name:
            position = int(item.get("positionInLocalQueue", 0)) + 1
            break
        ahead = neighbours.get(str(item_name))
        gpus_ahead += workload_gpus(ahead, gpu_resource) if ahead is not None else 0
    if position == 0:
        gpus_ahead = 0  # not listed: nothing is known of what is ahead
    return ExternalQueuePlace(
        attempt=attempt,
        position=position,
        gpus_ahead=gpus_ahead,
        reason=waiting_reason(workload, queue)[:2000],
    )


class KueueHold:
    """Reads where Kueue holds an attempt and whether it took one away. One list of a
    namespace's Workloads (and of its LocalQueue's pending ones) serves every attempt there for
    `cache_s`: each held job's watch asks every poll."""

    def __init__(self, queue: str, cache_s: float) -> None:
        self.queue = queue
        self._cache_s = cache_s
        self._workloads: dict[str, tuple[float, dict[str, Workload]]] = {}
        self._pending: dict[str, tuple[float, list[dict[str, Any]] | None]] = {}
        self._visibility_missing_logged = False

    async def place(
        self, api: ApiClient, namespace: str, job: V1Job, attempt: int
    ) -> ExternalQueuePlace | None:
        """Where Kueue holds the suspended `job`; None once Kueue admitted or evicted it."""
        workloads = await self._namespace_workloads(api, namespace)
        workload = _of_job(workloads, job.metadata.uid)
        if workload is None:
            reason = waiting_reason(None, self.queue)
            return ExternalQueuePlace(attempt=attempt, position=0, gpus_ahead=0, reason=reason)
        if is_admitted(workload) or eviction(workload) is not None:
            return None
        return place_in_queue(
            workload,
            await self._pending_workloads(api, namespace),
            workloads,
            attempt=attempt,
            queue=self.queue,
            gpu_resource=GPU_RESOURCE,
        )

    async def eviction(self, api: ApiClient, namespace: str, job: V1Job) -> PendingReason | None:
        """Why Kueue took `job`'s attempt away, naming the job it made room for when Kueue
        says (`by`); None if it did not take it away."""
        workload = _of_job(await self._namespace_workloads(api, namespace), job.metadata.uid)
        evicted = eviction(workload)
        if evicted is None or workload is None:
            return None
        preemptor = preemptor_job_uid(workload)
        by = await _job_id_of(api, namespace, preemptor) if preemptor else None
        return replace(evicted, by=by)

    async def _namespace_workloads(self, api: ApiClient, namespace: str) -> dict[str, Workload]:
        cached = self._workloads.get(namespace)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        listing = await CustomObjectsApi(api).list_namespaced_custom_object(
            KUEUE_GROUP, VERSION, namespace, "workloads"
        )
        found = {str(item["metadata"]["name"]): item for item in listing.get("items") or []}
        self._workloads[namespace] = (time.monotonic(), found)
        return found

    async def _pending_workloads(
        self, api: ApiClient, namespace: str
    ) -> list[dict[str, Any]] | None:
        """The LocalQueue's pending workloads in Kueue's order; None when the visibility API
        is not served or not allowed (positions are then unknown, the reason still shown)."""
        cached = self._pending.get(namespace)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        items: list[dict[str, Any]] | None
        try:
            summary = await api.call_api(
                _PENDING_PATH,
                "GET",
                path_params={"namespace": namespace, "queue": self.queue},
                response_types_map={200: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
            listed = summary.get("items") if isinstance(summary, dict) else None
            items = list(listed or [])
        except ApiException as error:
            if not self._visibility_missing_logged:
                path = _PENDING_PATH.format(namespace=namespace, queue=self.queue)
                logger.warning(
                    "Kueue's visibility API answered %s at %s: queue positions unknown",
                    error.status,
                    path,
                )
                self._visibility_missing_logged = True
            items = None
        self._pending[namespace] = (time.monotonic(), items)
        return items


def _of_job(workloads: Mapping[str, Workload], job_uid: str | None) -> Workload | None:
    """The Workload Kueue made for the Job with `job_uid` (by its job-uid label)."""
    for workload in workloads.values():
        if job_uid and workload.get("metadata", {}).get("labels", {}).get(LABEL_JOB_UID) == job_uid:
            return workload
    return None


async def _job_id_of(api: ApiClient, namespace: str, job_uid: str) -> str | None:
    """The Trainyard job whose trainer Job has `job_uid` (Kueue names preemptors so)."""
    jobs = await BatchV1Api(api).list_namespaced_job(namespace, label_selector=MANAGED_SELECTOR)
    for job in jobs.items or []:
        found = attempt_of(job.metadata) if job.metadata.uid == job_uid else None
        if found is not None:
            return found[1]
    return None
