"""The embedded tier's Temporal dev server, as the worker uses it."""

from __future__ import annotations

import asyncio
import time

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard_workflows.contracts import DEFAULT_TASK_QUEUE


async def _activity_pollers(client: Client, partition: str) -> int:
    request = DescribeTaskQueueRequest(
        namespace="default",
        task_queue=TaskQueue(name=partition, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )
    return len((await client.workflow_service.describe_task_queue(request)).pollers)


async def _pollers_by_partition(address: str) -> list[int]:
    client = await Client.connect(address)
    # A queue's partitions after the first are named /_sys/<queue>/<n>.
    partitions = [DEFAULT_TASK_QUEUE] + [f"/_sys/{DEFAULT_TASK_QUEUE}/{n}" for n in (1, 2, 3)]
    deadline = time.monotonic() + 30
    while True:
        pollers = [await _activity_pollers(client, name) for name in partitions]
        if pollers[0] or time.monotonic() > deadline:
            return pollers
        await asyncio.sleep(0.5)


def test_the_training_task_queue_has_one_partition_on_the_dev_server(
    platform: EmbeddedPlatform,
) -> None:
    # With Temporal's default four, the worker's activity pollers spread over all of them and
    # each partition kept its own loops waking the server (decision 010).
    pollers = asyncio.run(_pollers_by_partition(platform.config.temporal_address))

    assert pollers[0] > 0, "the worker never polled the training task queue"
    assert pollers[1:] == [0, 0, 0]
