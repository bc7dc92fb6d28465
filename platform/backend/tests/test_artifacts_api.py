"""GET /v1/jobs/{id}/artifacts/{name}: a finished job's weights, served from where they lie."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from trainyard.auth.roles import Role
from trainyard.core.settings import BackendSettings
from trainyard.jobs.models import Job
from trainyard.main import create_app
from trainyard.runtime import Runtime
from trainyard_testing.s3 import MOTO_KEY, new_bucket
from trainyard_workflows.storage import StorageSettings

from .support import callback, move, start_attempt, submit, user_with_key

WEIGHTS = b"\x80weights" * 50_000  # ~400 KB: more than one chunk of a stream


async def finish_with(
    api: httpx.AsyncClient,
    body: dict[str, Any],
    artifacts: dict[str, str],
    output_uri: str | None = None,
) -> str:
    """A job that SUCCEEDED reporting `artifacts`, as its trainer would."""
    job = await submit(api, body)
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"], output_uri=output_uri)
    done = {"status": "succeeded", "metrics": {}, "artifacts": artifacts}
    assert (await callback(api, job["id"], "done", token, done)).status_code == 202
    job_id: str = job["id"]
    return job_id


async def store_artifacts(app: FastAPI, job_id: str, artifacts: dict[str, str]) -> None:
    """Artifacts of a result stored before the callbacks confined them (a job that ended
    before issue 20): the download must refuse them on its own."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.result = {
            "metrics": {},
            "artifacts": {**(job.result or {}).get("artifacts", {}), **artifacts},
        }


def attempt_dir(settings: BackendSettings, job_id: str) -> str:
    return str(settings.data_dir / "jobs" / job_id / "attempt-1")


def job_folder(settings: BackendSettings, job_id: str) -> Path:
    folder = settings.data_dir / "jobs" / job_id / "attempt-1" / "run" / "weights"
    folder.mkdir(parents=True)
    return folder


async def test_weights_in_the_jobs_folder_download_with_a_name_that_says_whose_they_are(
    api: httpx.AsyncClient, settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    weights = job_folder(settings, job["id"]) / "best.pt"
    weights.write_bytes(WEIGHTS)
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"], output_dir=attempt_dir(settings, job["id"]))
    done = {"status": "succeeded", "artifacts": {"weights": str(weights)}}
    assert (await callback(api, job["id"], "done", token, done)).status_code == 202

    response = await api.get(f"/v1/jobs/{job['id']}/artifacts/weights")

    assert response.status_code == 200, response.text
    assert response.content == WEIGHTS
    assert f'filename="{job["id"]}-weights.pt"' in response.headers["content-disposition"]
    # Not guessed from `.pt` (application/vnd.snesdev-page-table): opaque bytes, as from S3.
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("/etc/passwd", "outside the job's folder"),
        ("relative/best.pt", "outside the job's folder"),
        ("file:///etc/hostname", "outside the job's folder"),
    ],
)
async def test_a_location_outside_the_platforms_folders_is_never_served(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any], location: str, why: str
) -> None:
    job_id = await finish_with(api, job_body, {})
    await store_artifacts(app, job_id, {"weights": location})

    response = await api.get(f"/v1/jobs/{job_id}/artifacts/weights")

    assert response.status_code == 404
    assert why in response.json()["detail"]


async def test_a_path_that_climbs_out_of_the_jobs_folder_is_refused(
    api: httpx.AsyncClient, app: FastAPI, settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    escape = f"{attempt_dir(settings, job['id'])}/../../../trainyard.db"
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"], output_dir=attempt_dir(settings, job["id"]))
    done = {"status": "succeeded", "artifacts": {"weights": escape}}
    assert (await callback(api, job["id"], "done", token, done)).status_code == 422
    await store_artifacts(app, job["id"], {"weights": escape})

    response = await api.get(f"/v1/jobs/{job['id']}/artifacts/weights")

    assert response.status_code == 404


async def test_an_unknown_name_lists_the_jobs_artifacts_and_a_folder_is_not_a_download(
    api: httpx.AsyncClient, settings: BackendSettings, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    folder = job_folder(settings, job["id"])
    assert (await move(api, job["id"], "STARTING")).status_code == 200
    token = await start_attempt(api, job["id"], output_dir=attempt_dir(settings, job["id"]))
    done = {"status": "succeeded", "artifacts": {"run_dir": str(folder)}}
    assert (await callback(api, job["id"], "done", token, done)).status_code == 202

    unknown = await api.get(f"/v1/jobs/{job['id']}/artifacts/weights")
    a_folder = await api.get(f"/v1/jobs/{job['id']}/artifacts/run_dir")

    assert unknown.status_code == 404
    assert "its artifacts are: run_dir" in unknown.json()["detail"]
    assert a_folder.status_code == 404
    assert "folder" in a_folder.json()["detail"]


async def test_another_projects_job_has_no_artifacts_to_download(
    api: httpx.AsyncClient, app: FastAPI, job_body: dict[str, Any]
) -> None:
    job = await submit(api, job_body)
    outsider = await user_with_key(app, "outsider", {"elsewhere": Role.ADMIN})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test", headers=outsider
    ) as client:
        response = await client.get(f"/v1/jobs/{job['id']}/artifacts/weights")

    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


@pytest.fixture
async def s3_api(
    settings: BackendSettings, moto_endpoint: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str, FastAPI]]:
    """The API with its storage in a fresh moto bucket; yields the client and the bucket."""
    bucket = new_bucket(moto_endpoint, "artifacts")
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
        yield client, bucket, application


async def test_weights_in_s3_stream_through_the_api(
    s3_api: tuple[httpx.AsyncClient, str, FastAPI], moto_endpoint: str, job_body: dict[str, Any]
) -> None:
    api, bucket, app = s3_api
    key = "trainyard/runs/job/weights/best.pt"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
    ).put_object(Bucket=bucket, Key=key, Body=WEIGHTS)
    job_id = await finish_with(
        api,
        job_body,
        {
            "weights": f"s3://{bucket}/{key}",
            "gone": f"s3://{bucket}/trainyard/runs/job/weights/last.pt",
        },
        output_uri=f"s3://{bucket}/trainyard/runs/job",
    )
    await store_artifacts(app, job_id, {"elsewhere": "s3://another-bucket/best.pt"})

    response = await api.get(f"/v1/jobs/{job_id}/artifacts/weights")
    gone = await api.get(f"/v1/jobs/{job_id}/artifacts/gone")
    elsewhere = await api.get(f"/v1/jobs/{job_id}/artifacts/elsewhere")

    assert response.status_code == 200, response.text
    assert response.content == WEIGHTS
    assert f'filename="{job_id}-weights.pt"' in response.headers["content-disposition"]
    assert (gone.status_code, elsewhere.status_code) == (404, 404)
    assert "no longer in storage" in gone.json()["detail"]
    assert "outside the configured storage" in elsewhere.json()["detail"]
