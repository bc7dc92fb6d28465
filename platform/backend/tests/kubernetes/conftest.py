"""Fixtures of the Kubernetes-launcher tests: the real backend (live_server) and the real
worker, in-process, whose KubernetesLauncher talks to kmock's emulator; the tests play the
cluster (job controller, kubelet, garbage collector) and the trainer (its HTTP callbacks).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from temporalio.testing import WorkflowEnvironment

from trainyard.core.settings import BackendSettings
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard_workflows.activities import TrainingActivities
from trainyard_workflows.activities.reconcile_activities import ReconcileActivities
from trainyard_workflows.activities.tracking_activities import TrackingActivities
from trainyard_workflows.backend_client import BackendClient
from trainyard_workflows.launchers.kubernetes_launcher import KubernetesLauncher
from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.tracking import build_tracker
from trainyard_workflows.worker import build_worker

from ..conftest import LiveServer, make_settings
from ..support import INTERNAL_TOKEN
from .cluster_play import NAMESPACE, TRAINER_IMAGE

# Short enough that a lost attempt would end a test's wait, long enough that no scenario's
# pause (a pending pod, a replacement pod) comes near it.
HEARTBEAT_TIMEOUT_S = 15.0


@pytest.fixture
def settings(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> BackendSettings:
    """The shared settings (both tiers) with a heartbeat timeout a test can outwait."""
    return make_settings(
        tmp_path / "data", temporal_address, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, **backend_tier
    )


@pytest.fixture
def shapes_uri(tmp_path: Path) -> str:
    """A tiny valid YOLO dataset: the worker validates it before anything is launched."""
    spec = ShapesSpec(train_images=2, val_images=1, image_size=32, seed=1)
    return make_shapes(tmp_path / "shapes", spec).uri


# --- Kubernetes: kmock's emulator as the API server --------------------------------------
# workflows/tests/conftest.py has the same emulator for the workflows package's tests (test
# packages cannot share fixtures).


def _matches(item: dict[str, Any], selector: str, *, dotted: bool) -> bool:
    for term in filter(None, selector.split(",")):
        key, sep, wanted = term.partition("=")
        if not sep or key.endswith("!"):
            raise NotImplementedError(f"selector term {term!r} is not an equality")
        if dotted:  # field selector: a path into the object
            value: Any = item
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        else:
            value = item.get("metadata", {}).get("labels", {}).get(key)
        if value != wanted:
            return False
    return True


class KubernetesApi(kmock.KubernetesEmulator):
    """The emulator plus what the launcher relies on from a real API server: a uid and a
    creationTimestamp on created objects, label and field selectors on lists, and the
    `foregroundDeletion` finalizer a foreground delete puts on the object."""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", _now())
        foreground = request.params.get("propagationPolicy") == "Foreground"
        if request.action == kmock.action.DELETE and foreground and request.resource:
            key = (request.resource, request.namespace, request.name or "")
            if key in self.objects and not self.objects[key].deleted:
                self.objects[key].patch({"metadata": {"finalizers": ["foregroundDeletion"]}})
        return await super()._handle(request)

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        listing = await super()._serve_list(request)
        assert isinstance(listing, dict)
        labels, fields = request.params.get("labelSelector"), request.params.get("fieldSelector")
        listing["items"] = [
            item
            for item in listing["items"]
            if _matches(item, labels or "", dotted=False)
            and _matches(item, fields or "", dotted=True)
        ]
        return listing


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def cluster() -> AsyncIterator[KubernetesApi]:
    """An empty cluster: kmock's emulator serving the Kubernetes API over real HTTP."""
    async with KubernetesApi() as server, kmock.Server(server):
        # Declared kinds: a list of a kind with no object yet answers an empty list, not 404.
        for kind, resource in [
            ("Job", "batch/v1/jobs"),
            ("Pod", "v1/pods"),
            ("Secret", "v1/secrets"),
            ("Event", "v1/events"),
        ]:
            server.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
        yield server


# --- the worker ------------------------------------------------------------------------------


@pytest.fixture
async def worker(
    tmp_path: Path,
    settings: BackendSettings,
    live_server: LiveServer,
    temporal_env: WorkflowEnvironment,
    cluster: KubernetesApi,
) -> AsyncIterator[WorkerSettings]:
    """The real worker (every workflow and activity) on the backend's task queue, launching
    trainers as Kubernetes Jobs in the emulator; yields its settings while it runs."""
    worker_settings = WorkerSettings(
        temporal_address=settings.temporal_address,
        temporal_namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
        backend_url=live_server.http_url,
        internal_token=INTERNAL_TOKEN,
        data_dir=tmp_path / "worker",
        launcher="kubernetes",
        k8s_namespace=NAMESPACE,
        k8s_images={"ultralytics": TRAINER_IMAGE},
        mlflow_tracking_uri=None,
        watch_poll_s=0.1,
        stop_grace_s=1,
    )

    async def api_client() -> ApiClient:
        return ApiClient(Configuration(host=str(cluster.url).rstrip("/")))

    launcher = KubernetesLauncher(worker_settings, api_client, poll_s=0.05)
    try:
        async with BackendClient(worker_settings.backend_url, INTERNAL_TOKEN) as backend:
            activities = TrainingActivities(backend, launcher, worker_settings)
            tracking = TrackingActivities(backend, build_tracker(worker_settings), worker_settings)
            reconcile = ReconcileActivities(backend, launcher)
            client = temporal_env.client
            async with build_worker(client, worker_settings, activities, tracking, reconcile):
                yield worker_settings
    finally:
        await launcher.aclose()
