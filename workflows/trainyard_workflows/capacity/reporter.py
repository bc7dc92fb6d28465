"""The worker tells the backend its capacity at start and every `capacity_report_interval_s`,
so admission follows a GPU added, a node drained or a setting changed. A report that fails is
logged and tried again at the next interval: capacity never stops the worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.capacity.kubernetes import discover_kubernetes
from trainyard_workflows.capacity.local import default_cpu_slots, discover_local
from trainyard_workflows.capacity.model import AdmissionQueue, Capacity
from trainyard_workflows.launchers.kubernetes_client import create_api_client
from trainyard_workflows.settings import WorkerSettings

logger = logging.getLogger(__name__)

Discovery = Callable[[], Awaitable[Capacity]]


def discovery_for(settings: WorkerSettings) -> Discovery:
    """Where the launcher runs trainers decides where capacity is read: this machine, or the
    cluster's nodes. TRAINYARD_GPUS replaces discovery on either."""
    cpu_slots = settings.cpu_run_slots or default_cpu_slots()
    queue: AdmissionQueue = "kueue" if settings.k8s_kueue_queue else "platform"

    async def local() -> Capacity:
        # NVML and nvidia-smi block: keep them off the worker's event loop.
        found = await asyncio.to_thread(discover_local, settings.gpus, settings.cpu_run_slots)
        largest = min(settings.gpus_per_node or found.gpus, found.gpus)
        return found.model_copy(update={"queue": queue, "largest_node_gpus": largest})

    async def cluster() -> Capacity:
        async with await create_api_client(settings) as api:
            found = await discover_kubernetes(api, cpu_slots)
        return found.model_copy(update={"queue": queue})

    if settings.launcher == "kubernetes" and settings.gpus is None:
        return cluster
    return local


class CapacityReporter:
    """Reports what `discover` finds through the worker's backend client, every `every_s`."""

    def __init__(self, backend: BackendClient, discover: Discovery, every_s: float) -> None:
        self._backend = backend
        self._discover = discover
        self._every_s = every_s
        self.last_reported: Capacity | None = None

    async def report_once(self) -> bool:
        """Discover and report once; False (logged) when either failed."""
        try:
            capacity = await self._discover()
            await self._backend.report_capacity(capacity)
        except Exception as error:  # anything: the next interval tries again
            logger.warning("could not report the worker's capacity (retrying later): %s", error)
            return False
        if capacity != self.last_reported:  # log changes, not every report
            logger.info(
                "capacity: %d GPU(s) (%d on the largest node, from %s), %d CPU run(s) at a time",
                capacity.gpus,
                capacity.largest_node_gpus,
                capacity.source,
                capacity.cpu_slots,
            )
        self.last_reported = capacity
        return True

    async def run(self) -> None:
        """Report now and every interval until cancelled."""
        while True:
            await self.report_once()
            await asyncio.sleep(self._every_s)
