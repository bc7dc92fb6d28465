"""The production tier end to end: the same processes as the embedded tier, configured by env
only for PostgreSQL, Redis and S3 (moto server), tracked in an MLflow server. A dataset is
uploaded into the bucket, a tiny job trains on it, and its weights come back as an s3:// object.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import boto3
import httpx
import pytest
import redis
from mlflow.tracking import MlflowClient
from redis.client import PubSub

from trainyard.datasets.synthetic_shapes import GeneratedDataset
from trainyard_testing.s3 import MOTO_KEY
from trainyard_workflows.storage import parse_storage_uri

from ..conftest import REDIS_URL, run_aside
from .conftest import ProductionPlatform
from .helpers import (
    TERMINAL,
    cancel_and_check_trainer_gone,
    read_stream,
    states_of,
    submit,
    ultralytics_task_of,
    wait_for,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

pytestmark = pytest.mark.xdist_group("e2e")


@pytest.fixture(scope="module")
def api(production_platform: ProductionPlatform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=production_platform.api_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def s3(production_platform: ProductionPlatform) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=production_platform.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
    )


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _keys(s3: S3Client, uri: str) -> list[str]:
    """The keys of every object below the s3:// `uri`, relative to it."""
    location = parse_storage_uri(uri)
    listed = s3.list_objects_v2(Bucket=location.bucket, Prefix=f"{location.path}/")
    return [item["Key"][len(location.path) + 1 :] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def dataset(api: httpx.Client, shapes: GeneratedDataset) -> dict[str, Any]:
    """The shapes dataset, uploaded as a zip through the API."""
    response = api.post(
        "/v1/datasets",
        data={"name": "shapes-s3", "format": "yolo"},
        files={"file": ("shapes.zip", _zip_of(shapes.root), "application/zip")},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@dataclass(frozen=True)
class Trained:
    job: dict[str, Any]
    # As the WebSocket delivered them, and as the API published them on Redis.
    streamed: list[dict[str, Any]]
    relayed: list[dict[str, Any]]


@pytest.fixture(scope="module")
def trained(
    api: httpx.Client, production_platform: ProductionPlatform, dataset: dict[str, Any]
) -> Iterator[Trained]:
    """A tiny job on the uploaded dataset, followed on its stream until it ended."""
    relay = redis.Redis.from_url(REDIS_URL)
    listener = PubSub(relay.connection_pool)
    listener.psubscribe(f"{production_platform.redis_channel_prefix}:job:*")
    try:
        confirmed = listener.get_message(timeout=5)
        assert confirmed is not None
        assert confirmed["type"] == "psubscribe"
        job = submit(api, dataset["name"], epochs=2)
        streamed, close_code = read_stream(api, job["id"])
        assert close_code == 1000
        relayed = []
        while (message := listener.get_message(timeout=1)) is not None:
            if message["type"] == "pmessage":
                relayed.append(json.loads(message["data"]))
        yield Trained(job, streamed, relayed)
    finally:
        listener.close()
        relay.close()


def test_an_uploaded_dataset_lands_in_the_bucket_and_is_valid(
    production_platform: ProductionPlatform,
    dataset: dict[str, Any],
    s3: S3Client,
    shapes: GeneratedDataset,
) -> None:
    assert dataset["status"] == "valid", dataset["report"]
    assert dataset["uri"] == (
        f"{production_platform.storage_url}/datasets/{dataset['project_id']}/{dataset['id']}"
    )
    keys = _keys(s3, dataset["uri"])
    assert "data.yaml" in keys
    images = [key for key in keys if key.startswith("images/")]
    assert len(images) == shapes.train_images + shapes.val_images


def _attempt_uri(production_platform: ProductionPlatform, job: dict[str, Any]) -> str:
    """Where the job's first attempt publishes its files, with a trailing slash."""
    return f"{production_platform.storage_url}/jobs/{job['id']}/attempt-1/"


def test_a_job_on_an_s3_dataset_streams_every_event_in_order_to_succeeded(
    production_platform: ProductionPlatform, trained: Trained, dataset: dict[str, Any]
) -> None:
    job, events = trained.job, trained.streamed

    assert job["dataset_uri"] == dataset["uri"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert states_of(events) == ["VALIDATING", "STARTING", "RUNNING", "SUCCEEDED"]
    epochs = [
        e["data"]["epoch"] for e in events if e["type"] == "heartbeat" and e["data"]["metrics"]
    ]
    assert epochs == [1, 2]
    report = next(e for e in events if e["type"] == "validation_report")
    assert report["data"]["errors"] == []
    checkpoints = [e["data"]["path"] for e in events if e["type"] == "checkpoint_saved"]
    assert checkpoints
    assert all(path.startswith(_attempt_uri(production_platform, job)) for path in checkpoints)


def test_events_are_relayed_through_redis_and_stored_in_postgresql(
    production_platform: ProductionPlatform, trained: Trained
) -> None:
    job_id = trained.job["id"]

    stored = run_aside(_stored_seqs(production_platform.database_url, job_id))

    # The run's tracking may add events after the stream closed on SUCCEEDED.
    seqs = [e["seq"] for e in trained.streamed]
    assert stored[: len(seqs)] == seqs
    assert set(seqs) <= {e["seq"] for e in trained.relayed}


async def _stored_seqs(database_url: str, job_id: str) -> list[int]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT seq FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
        )
    finally:
        await connection.close()
    return [int(row["seq"]) for row in rows]


def test_the_weights_are_an_s3_object_of_the_attempt_that_ultralytics_loads(
    api: httpx.Client,
    production_platform: ProductionPlatform,
    trained: Trained,
    s3: S3Client,
    trainer_python: Path,
    tmp_path: Path,
) -> None:
    job, events = trained.job, trained.streamed
    final = api.get(f"/v1/jobs/{job['id']}").json()

    assert final["state"] == "SUCCEEDED"
    assert final["last_seq"] == len(events)
    weights = parse_storage_uri(final["result"]["artifacts"]["weights"])
    attempt = _attempt_uri(production_platform, job)
    assert weights.scheme == "s3"
    assert weights.uri.startswith(attempt)
    published = _keys(s3, attempt.rstrip("/"))
    best = weights.uri.removeprefix(attempt)
    assert best in published
    assert best.replace("best.pt", "last.pt") in published
    assert not [key for key in published if key.endswith(".partial")]
    local = tmp_path / "best.pt"
    s3.download_file(weights.bucket, weights.path, str(local))
    assert ultralytics_task_of(trainer_python, local) == "detect"


def test_the_job_is_an_mlflow_run_with_epoch_metrics_and_a_model_version(
    api: httpx.Client,
    production_platform: ProductionPlatform,
    trained: Trained,
    s3: S3Client,
) -> None:
    job = trained.job

    # The job turns SUCCEEDED first; its run is closed and registered right after.
    final = wait_for(api, job["id"], lambda j: bool((j.get("tracking") or {}).get("model_version")))

    tracking = final["tracking"]
    mlflow_url = production_platform.mlflow_url
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    run = client.get_run(tracking["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset_uri"] == job["dataset_uri"]
    losses = client.get_metric_history(run.info.run_id, "train/box_loss")
    assert sorted(m.step for m in losses) == [1, 2]
    weights = client.list_artifacts(run.info.run_id, "weights")
    assert [a.path for a in weights] == ["weights/best.pt"]
    in_storage = parse_storage_uri(final["result"]["artifacts"]["weights"])
    head = s3.head_object(Bucket=in_storage.bucket, Key=in_storage.path)
    assert weights[0].file_size == head["ContentLength"]
    version = client.get_model_version(tracking["model_name"], tracking["model_version"])
    assert version.run_id == run.info.run_id
    events = api.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    assert not [e for e in events if e["type"] == "tracking_warning"]


def _trained_an_epoch(job: dict[str, Any]) -> bool:
    return job["state"] in TERMINAL or (job.get("progress") or {}).get("epoch", 0) >= 1


def test_cancel_mid_run_on_an_s3_uri_ends_cancelled_keeping_the_published_checkpoint(
    api: httpx.Client,
    production_platform: ProductionPlatform,
    dataset: dict[str, Any],
    s3: S3Client,
) -> None:
    job = submit(api, dataset["uri"], epochs=200)
    running = wait_for(api, job["id"], _trained_an_epoch)
    assert running["state"] == "RUNNING"
    cancel_and_check_trainer_gone(api, job["id"])
    published = _keys(s3, _attempt_uri(production_platform, job).rstrip("/"))
    assert "run/weights/last.pt" in published
    assert not [key for key in published if key.endswith(".partial")]
