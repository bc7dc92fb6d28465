"""The worker's capacity reports: through its backend client (bearer token, PUT, the Capacity
JSON), again at every interval, and a failure is logged and retried, never raised. Discovery
follows the launcher: this machine, or the cluster's nodes (kmock's emulator)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import kmock
import pytest

from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.capacity import Capacity
from trainyard_workflows.capacity.reporter import CapacityReporter, discovery_for
from trainyard_workflows.settings import WorkerSettings

CAPACITY = Capacity(gpus=2, largest_node_gpus=2, cpu_slots=3, source="configured")


class Backend:
    """Answers each request with the next status of `statuses` (the last one repeats)."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)


def client_of(backend: Backend) -> BackendClient:
    return BackendClient(
        "http://backend.test",
        "internal-secret",
        retry_for_s=0.05,
        transport=httpx.MockTransport(backend),
    )


async def discovered() -> Capacity:
    return CAPACITY


async def test_a_report_puts_the_capacity_with_the_internal_token() -> None:
    backend = Backend(204)
    async with client_of(backend) as client:
        reporter = CapacityReporter(client, discovered, every_s=60)

        assert await reporter.report_once() is True

    (request,) = backend.requests
    assert (request.method, request.url.path) == ("PUT", "/internal/v1/capacity")
    assert request.headers["Authorization"] == "Bearer internal-secret"
    assert Capacity.model_validate_json(request.content) == CAPACITY
    assert reporter.last_reported == CAPACITY


async def test_a_failed_report_is_logged_and_the_next_interval_reports_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Backend(httpx.ConnectError("refused"), 401, 204)
    fourth_interval = asyncio.Event()
    discoveries = 0

    async def counted() -> Capacity:
        nonlocal discoveries
        discoveries += 1
        if discoveries == 4:  # three reports are over: two failed, one went through
            fourth_interval.set()
        return CAPACITY

    async with client_of(backend) as client:
        reporter = CapacityReporter(client, counted, every_s=0.01)
        running = asyncio.create_task(reporter.run())
        try:
            await asyncio.wait_for(fourth_interval.wait(), timeout=5)
        finally:
            running.cancel()
            await asyncio.wait([running])

    assert running.cancelled()  # it ran on through both failures until stopped
    assert [r.method for r in backend.requests][:3] == ["PUT", "PUT", "PUT"]
    assert reporter.last_reported == CAPACITY
    assert "could not report the worker's capacity" in caplog.text
    assert "TRAINYARD_INTERNAL_TOKEN" in caplog.text  # the 401 says what to fix


async def test_a_failed_discovery_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> Capacity:
        raise RuntimeError("the driver is wedged")

    backend = Backend(204)
    async with client_of(backend) as client:
        assert await CapacityReporter(client, broken, every_s=60).report_once() is False

    assert backend.requests == []
    assert "the driver is wedged" in caplog.text


async def test_the_subprocess_launcher_reports_this_machine_with_its_overrides() -> None:
    settings = WorkerSettings(gpus=0, cpu_run_slots=5)

    found = await discovery_for(settings)()

    assert found == Capacity(gpus=0, largest_node_gpus=0, cpu_slots=5, source="configured")


async def test_the_kubernetes_launcher_reports_the_clusters_nodes(
    cluster: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    cluster.resources["v1/nodes"] = kmock.ResourceInfo(namespaced=False, kind="Node")
    cluster.objects["v1/nodes", None, "gpu-a"] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-a"},
        "status": {"allocatable": {"nvidia.com/gpu": "4"}},
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": str(cluster.url).rstrip("/")}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    settings = WorkerSettings(
        launcher="kubernetes",
        k8s_images={"ultralytics": "registry.example/trainer:1"},
        k8s_kubeconfig=kubeconfig,
        cpu_run_slots=2,
    )

    found = await discovery_for(settings)()

    assert found == Capacity(gpus=4, largest_node_gpus=4, cpu_slots=2, source="kubernetes")
    # With Kueue, the report says so: the backend's ledger leaves the cluster's capacity to it,
    # and the backend reads that from the body the worker sends.
    kueue = settings.model_copy(update={"k8s_kueue_queue": "trainyard"})
    sent = Backend(204)
    async with client_of(sent) as client:
        assert await CapacityReporter(client, discovery_for(kueue), every_s=60).report_once()
    assert json.loads(sent.requests[0].content)["queue"] == "kueue"


async def test_configured_gpus_with_a_node_size_bound_one_job_by_a_node() -> None:
    """GPU node groups that scale to zero: nothing to discover while idle, so the chart sets
    what the groups may grow to and one node's GPUs (Terraform's gpu-capacity outputs)."""
    settings = WorkerSettings(
        launcher="kubernetes",
        k8s_images={"ultralytics": "registry.example/trainer:1"},
        gpus=12,
        gpus_per_node=4,
        cpu_run_slots=2,
    )

    found = await discovery_for(settings)()

    assert found == Capacity(gpus=12, largest_node_gpus=4, cpu_slots=2, source="configured")
