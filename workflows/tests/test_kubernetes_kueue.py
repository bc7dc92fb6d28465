"""Reading Kueue's Workloads (launchers/kubernetes_kueue.py): where one waits and why, what a
workload asks, who preempted it. Pure functions over the API's JSON."""

from __future__ import annotations

from typing import Any

from trainyard_workflows.launchers.base import PendingReason
from trainyard_workflows.launchers.kubernetes_kueue import (
    eviction,
    place_in_queue,
    preemptor_job_uid,
    waiting_reason,
    workload_gpus,
)
from trainyard_workflows.launchers.kubernetes_manifests import GPU_RESOURCE

NO_QUOTA = "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu"


def workload(
    name: str, gpus: int = 1, count: int = 1, *conditions: dict[str, str]
) -> dict[str, Any]:
    container = {"name": "trainer", "resources": {"limits": {GPU_RESOURCE: str(gpus)}}}
    return {
        "metadata": {"name": name},
        "spec": {
            "podSets": [
                {"name": "main", "count": count, "template": {"spec": {"containers": [container]}}}
            ]
        },
        "status": {"conditions": list(conditions)},
    }


def condition(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def pending(*names: str) -> list[dict[str, Any]]:
    return [{"metadata": {"name": n}, "positionInLocalQueue": i} for i, n in enumerate(names)]


def test_a_workload_asks_its_pod_sets_gpus_times_their_count() -> None:
    assert workload_gpus(workload("w", gpus=2, count=3), GPU_RESOURCE) == 6
    assert workload_gpus(workload("w", gpus=0), GPU_RESOURCE) == 0


def test_the_place_counts_from_one_with_the_gpus_of_those_ahead() -> None:
    mine = workload("mine", 1, 1, condition("QuotaReserved", "False", "Pending", NO_QUOTA))
    neighbours = {"a": workload("a", gpus=2), "b": workload("b", gpus=1, count=2), "mine": mine}

    place = place_in_queue(
        mine, pending("a", "b", "mine"), neighbours, attempt=1, queue="q", gpu_resource=GPU_RESOURCE
    )

    assert (place.position, place.gpus_ahead) == (3, 4)
    assert place.reason == f"Kueue, LocalQueue q: {NO_QUOTA}"


def test_without_the_visibility_api_the_place_is_unknown_but_the_reason_is_told() -> None:
    mine = workload("mine", 1, 1, condition("QuotaReserved", "False", "Pending", NO_QUOTA))

    place = place_in_queue(mine, None, {}, attempt=2, queue="q", gpu_resource=GPU_RESOURCE)

    assert (place.attempt, place.position, place.gpus_ahead) == (2, 0, 0)
    assert NO_QUOTA in place.reason


def test_before_kueue_made_the_workload_the_reason_says_so() -> None:
    assert waiting_reason(None, "q") == "Kueue has not taken the Job into LocalQueue q yet"


def test_an_eviction_names_its_reason_and_its_preemptor_job() -> None:
    message = (
        "Preempted to accommodate a workload (UID: 5e1d, JobUID: 0b6c1f7e-aaaa-bbbb-cccc-"
        "1234567890ab) due to prioritization in the ClusterQueue"
    )
    evicted = workload("w", 1, 1, condition("Evicted", "True", "Preempted", message))

    assert eviction(evicted) == PendingReason("Preempted", message)
    assert preemptor_job_uid(evicted) == "0b6c1f7e-aaaa-bbbb-cccc-1234567890ab"


def test_an_admitted_or_waiting_workload_was_not_evicted() -> None:
    admitted = workload("w", 1, 1, condition("Admitted", "True"), condition("Evicted", "False"))

    assert eviction(admitted) is None
    assert eviction(None) is None
    assert preemptor_job_uid(admitted) is None
