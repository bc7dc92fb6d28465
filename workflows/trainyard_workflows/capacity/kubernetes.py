"""The capacity of a Kubernetes cluster: the `nvidia.com/gpu` its schedulable nodes can
allocate (the device plugin's count), in all and on the biggest node."""

from __future__ import annotations

import logging

from kubernetes_asyncio.client import ApiClient, CoreV1Api, V1Node

from trainyard_workflows.capacity.model import Capacity

logger = logging.getLogger(__name__)

GPU_RESOURCE = "nvidia.com/gpu"


def allocatable_gpus(node: V1Node) -> int:
    """The GPUs a node can give pods; 0 for a cordoned node (nothing new lands there) or one
    without the device plugin."""
    if node.spec is not None and node.spec.unschedulable:
        return 0
    allocatable = (node.status.allocatable if node.status is not None else None) or {}
    quantity = allocatable.get(GPU_RESOURCE)
    if quantity is None:
        return 0
    try:
        return max(0, int(quantity))
    except ValueError:  # an extended resource is a whole number; anything else is not a GPU
        name = node.metadata.name if node.metadata is not None else "?"
        logger.warning("node %s: %s is %r, not a whole number", name, GPU_RESOURCE, quantity)
        return 0


async def discover_kubernetes(api_client: ApiClient, cpu_slots: int) -> Capacity:
    """The cluster's capacity (the worker's role must be allowed to list nodes); `cpu_slots`:
    CPU-only runs at a time, the cluster has no count of its own for them."""
    nodes = await CoreV1Api(api_client).list_node()
    per_node = [allocatable_gpus(node) for node in nodes.items]
    return Capacity(
        gpus=sum(per_node),
        largest_node_gpus=max(per_node, default=0),
        cpu_slots=cpu_slots,
        source="kubernetes",
    )
