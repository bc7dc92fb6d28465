"""A cluster's capacity from its nodes' allocatable `nvidia.com/gpu`, against kmock's
emulator serving the Kubernetes API over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from trainyard_workflows.capacity import Capacity
from trainyard_workflows.capacity.kubernetes import discover_kubernetes

NODES = "v1/nodes"


@pytest.fixture
async def api(cluster: kmock.KubernetesEmulator) -> AsyncIterator[ApiClient]:
    # Nodes are cluster-scoped: the shared fixture declares only the launcher's kinds.
    cluster.resources[NODES] = kmock.ResourceInfo(namespaced=False, kind="Node")
    async with ApiClient(Configuration(host=str(cluster.url).rstrip("/"))) as client:
        yield client


def add_node(
    cluster: kmock.KubernetesEmulator,
    name: str,
    gpus: str | None,
    *,
    unschedulable: bool = False,
) -> None:
    allocatable: dict[str, Any] = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    cluster.objects[NODES, None, name] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"allocatable": allocatable, "capacity": allocatable},
    }


async def test_gpus_are_summed_over_the_nodes_and_the_largest_node_is_the_most_per_job(
    cluster: kmock.KubernetesEmulator, api: ApiClient
) -> None:
    add_node(cluster, "gpu-a", "4")
    add_node(cluster, "gpu-b", "2")
    add_node(cluster, "cpu-only", None)

    found = await discover_kubernetes(api, cpu_slots=6)

    assert found == Capacity(gpus=6, largest_node_gpus=4, cpu_slots=6, source="kubernetes")


async def test_a_cordoned_node_gives_nothing(
    cluster: kmock.KubernetesEmulator, api: ApiClient
) -> None:
    add_node(cluster, "gpu-a", "2")
    add_node(cluster, "gpu-drained", "8", unschedulable=True)

    found = await discover_kubernetes(api, cpu_slots=1)

    assert (found.gpus, found.largest_node_gpus) == (2, 2)


async def test_a_cluster_without_gpu_nodes_has_no_gpu(
    cluster: kmock.KubernetesEmulator, api: ApiClient
) -> None:
    add_node(cluster, "cpu-a", None)
    add_node(cluster, "cpu-b", "0")

    found = await discover_kubernetes(api, cpu_slots=3)

    assert found == Capacity(gpus=0, largest_node_gpus=0, cpu_slots=3, source="kubernetes")


async def test_an_empty_cluster_has_no_gpu(api: ApiClient) -> None:
    found = await discover_kubernetes(api, cpu_slots=1)

    assert (found.gpus, found.largest_node_gpus) == (0, 0)
