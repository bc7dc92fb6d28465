"""End-to-end fixtures: the real embedded platform (Temporal dev server, API, worker) as
separate processes, the real ultralytics trainer environment, and tiny synthetic datasets.

All e2e tests run in one xdist group and share one platform per tier (embedded, production),
so the suite starts each at most once.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedConfig, EmbeddedPlatform, free_local_port
from trainyard.datasets.synthetic_shapes import GeneratedDataset, ShapesSpec, make_shapes
from trainyard_testing.s3 import MOTO_KEY, new_bucket

from ..conftest import REDIS_URL, postgres_admin, run_aside

REPO_ROOT = Path(__file__).resolve().parents[4]
TRAINER_PYTHON = REPO_ROOT / "trainers" / "ultralytics" / ".venv" / "bin" / "python"


@pytest.fixture(scope="session")
def trainer_python() -> Path:
    if not TRAINER_PYTHON.exists():
        pytest.fail(
            f"the ultralytics trainer environment is missing ({TRAINER_PYTHON}): "
            "run `make trainers`"
        )
    return TRAINER_PYTHON


# Short enough that a stuck attempt is noticed within a test, long enough for a CPU epoch of
# the tiny model.
_TEST_TIMINGS = {"TRAINYARD_HEARTBEAT_TIMEOUT_S": "60", "TRAINYARD_STOP_GRACE_S": "5"}
# The shared platforms run the jobs of several tests at once: room for them all (the queue's
# own tests make a platform with one slot, test_admission_e2e.py).
_TEST_CAPACITY = {"TRAINYARD_CPU_RUN_SLOTS": "8"}


def _config(data_dir: Path, extra_env: dict[str, str]) -> EmbeddedConfig:
    return EmbeddedConfig.on_free_ports(
        data_dir,
        extra_env={**_TEST_TIMINGS, **_TEST_CAPACITY, **extra_env},
    )


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, trainer_python: Path
) -> Iterator[EmbeddedPlatform]:
    # Datasets are made in the session's temp folder, outside the home folder and data_dir.
    roots = {"TRAINYARD_DATASET_ROOTS": json.dumps([str(tmp_path_factory.getbasetemp())])}
    # The worker's Prometheus endpoints (its own metrics, the Temporal SDK's), which a real
    # Prometheus scrapes in test_metrics_e2e.py.
    metrics = {
        "TRAINYARD_METRICS_PORT": str(free_local_port()),
        "TRAINYARD_TEMPORAL_METRICS_PORT": str(free_local_port()),
    }
    embedded = EmbeddedPlatform(_config(tmp_path_factory.mktemp("platform"), roots | metrics))
    try:
        embedded.start()
        yield embedded
    finally:
        embedded.stop()


@dataclass(frozen=True)
class ProductionPlatform:
    """The same processes as `platform`, configured by env only for PostgreSQL, Redis, S3."""

    processes: EmbeddedPlatform
    database_url: str
    redis_channel_prefix: str
    bucket: str
    storage_url: str
    s3_endpoint_url: str

    @property
    def api_url(self) -> str:
        return self.processes.config.api_url

    @property
    def mlflow_url(self) -> str:
        return self.processes.config.mlflow_url


async def _admin(*statements: str) -> None:
    admin = await postgres_admin()
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def production_platform(
    tmp_path_factory: pytest.TempPathFactory, trainer_python: Path, moto_endpoint: str
) -> Iterator[ProductionPlatform]:
    """The production tier: an empty PostgreSQL database (the API migrates it at start-up),
    the Redis bus on a channel namespace of its own, S3 storage in a fresh moto bucket, and
    real secrets. One per session: it costs seconds to start."""
    database = f"trainyard_e2e_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
    run_aside(_admin(drop, f'CREATE DATABASE "{database}"'))
    bucket = new_bucket(moto_endpoint, "e2e")
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    storage_url = f"s3://{bucket}/trainyard"
    channel_prefix = f"e2e-{uuid.uuid4().hex}"
    env = {
        "TRAINYARD_DATABASE_URL": database_url,
        "TRAINYARD_REDIS_URL": REDIS_URL,
        "TRAINYARD_REDIS_CHANNEL_PREFIX": channel_prefix,
        "TRAINYARD_STORAGE_URL": storage_url,
        "TRAINYARD_S3_ENDPOINT_URL": moto_endpoint,
        "TRAINYARD_S3_ACCESS_KEY_ID": MOTO_KEY,
        "TRAINYARD_S3_SECRET_ACCESS_KEY": MOTO_KEY,
        "TRAINYARD_INTERNAL_TOKEN": secrets.token_urlsafe(32),
        "TRAINYARD_CALLBACK_SECRET": secrets.token_urlsafe(32),
    }
    processes = EmbeddedPlatform(_config(tmp_path_factory.mktemp("production"), env))
    try:
        processes.start()
        yield ProductionPlatform(
            processes, database_url, channel_prefix, bucket, storage_url, moto_endpoint
        )
    finally:
        processes.stop()
        run_aside(_admin(drop))


@pytest.fixture
def api(platform: EmbeddedPlatform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.config.api_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    spec = ShapesSpec(train_images=8, val_images=4, image_size=64, seed=1)
    return make_shapes(tmp_path_factory.mktemp("shapes"), spec)
