"""A job's `dataset` on S3 storage (moto server): an s3:// prefix inside the configured bucket
is accepted as is; one outside it, with `..`, or with another scheme is 422 naming `dataset`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard_testing.s3 import MOTO_KEY, new_bucket
from trainyard_workflows.storage import StorageSettings

from .support import get_job
from .test_job_validation import refused


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    return new_bucket(moto_endpoint, "jobs")


@pytest.fixture
async def s3_api(
    settings: BackendSettings, moto_endpoint: str, bucket: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its storage in `s3://<bucket>/trainyard`."""
    storage = StorageSettings(
        storage_url=f"s3://{bucket}/trainyard",
        s3_endpoint_url=moto_endpoint,
        s3_access_key_id=MOTO_KEY,
        s3_secret_access_key=SecretStr(MOTO_KEY),
    )
    application: FastAPI = create_app(settings, storage)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://trainyard.test"
        ) as client,
    ):
        yield client


async def test_an_s3_prefix_inside_the_storage_is_the_jobs_dataset_uri(
    s3_api: httpx.AsyncClient, job_body: dict[str, Any], bucket: str
) -> None:
    uri = f"s3://{bucket}/trainyard/datasets/shapes/"

    response = await s3_api.post("/v1/jobs", json={**job_body, "dataset": uri})

    assert response.status_code == 201, response.text
    job = await get_job(s3_api, response.json()["id"])
    assert job["dataset"] == uri
    assert job["dataset_uri"] == f"s3://{bucket}/trainyard/datasets/shapes"


async def test_an_s3_prefix_with_a_space_is_stored_percent_encoded_as_trainers_read_it(
    s3_api: httpx.AsyncClient, job_body: dict[str, Any], bucket: str
) -> None:
    response = await s3_api.post(
        "/v1/jobs", json={**job_body, "dataset": f"s3://{bucket}/trainyard/my sets/v2"}
    )

    assert response.status_code == 201, response.text
    assert response.json()["dataset_uri"] == f"s3://{bucket}/trainyard/my%20sets/v2"


@pytest.mark.parametrize(
    "dataset",
    [
        "s3://{bucket}/elsewhere/shapes",
        "s3://{bucket}/trainyard-other/shapes",
        "s3://{bucket}",
        "s3://another-bucket/trainyard/shapes",
        "s3://{bucket}/trainyard/datasets/../../secrets",
        "s3://{bucket}/trainyard/datasets/%2E%2E/x",
        "s3://Not_A_Bucket/trainyard",
        "gs://{bucket}/trainyard/shapes",
        "https://example.com/shapes.zip",
        "s3://{bucket}/trainyard/shapes?versionId=1",
    ],
)
async def test_a_dataset_uri_outside_the_storage_or_malformed_is_422_naming_dataset(
    s3_api: httpx.AsyncClient, job_body: dict[str, Any], bucket: str, dataset: str
) -> None:
    assert await refused(s3_api, {**job_body, "dataset": dataset.format(bucket=bucket)}) == [
        "dataset"
    ]


async def test_a_file_uri_still_works_when_storage_is_s3(
    s3_api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    response = await s3_api.post("/v1/jobs", json=job_body)

    assert response.status_code == 201, response.text
    assert response.json()["dataset_uri"] == job_body["dataset"]


async def test_an_uploaded_dataset_named_by_a_job_resolves_to_its_s3_prefix(
    s3_api: httpx.AsyncClient, job_body: dict[str, Any], bucket: str
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data.yaml", "train: images/train\nval: images/val\nnames: [a]\n")
    uploaded = await s3_api.post(
        "/v1/datasets",
        data={"name": "tiny", "format": "yolo"},
        files={"file": ("tiny.zip", archive.getvalue(), "application/zip")},
    )
    assert uploaded.status_code == 201, uploaded.text
    dataset = uploaded.json()

    response = await s3_api.post("/v1/jobs", json={**job_body, "dataset": "tiny"})

    assert response.status_code == 201, response.text
    assert dataset["uri"] == f"s3://{bucket}/trainyard/datasets/default/{dataset['id']}"
    assert response.json()["dataset_uri"] == dataset["uri"]
