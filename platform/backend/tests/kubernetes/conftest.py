"""Fixtures of the Kubernetes-launcher tests: the real backend (live_server) and the real
worker, in-process, whose KubernetesLauncher talks to kmock's emulator; the tests play the
cluster (job controller, kubelet, garbage collector) and the trainer (its HTTP callbacks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from temporalio.testing import WorkflowEnvironment

from trainyard.core.settings import BackendSettings
from trainyard.datasets.synthetic_shapes import ShapesSpec, make_shapes
from trainyard_testing.kubernetes import KubernetesApi
from trainyard_workflows.activities import TrainingActivities
from trainyard_workflows.activities.admission_activities import AdmissionActivities
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


# --- the worker ------------------------------------------------------------------------------


@pytest.fixture
def worker_overrides() -> dict[str, object]:
    """More worker settings for a module's scenarios (a module overrides this fixture)."""
    return {}


@pytest.fixture
async def worker(
    tmp_path: Path,
    settings: BackendSettings,
    live_server: LiveServer,
    temporal_env: WorkflowEnvironment,
    cluster: KubernetesApi,
    worker_overrides: dict[str, object],
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
        **worker_overrides,  # type: ignore[arg-type]
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
            async with build_worker(
                client,
                worker_settings,
                activities,
                tracking,
                reconcile,
                AdmissionActivities(backend),
            ):
                yield worker_settings
    finally:
        await launcher.aclose()
