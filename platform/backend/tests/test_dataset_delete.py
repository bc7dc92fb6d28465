"""DELETE /v1/datasets/{id}: the record and the files the platform stored go, audited; a
registered location stays; refused while a job that has not ended trains on it; scoped to the
caller's projects and roles like every route."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from trainyard.auth.models import AuditEvent
from trainyard.auth.roles import Role
from trainyard.runtime import Runtime
from trainyard_workflows.storage import ObjectStore

from .support import move, submit, user_with_key


def _client(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://trainyard.test", headers=headers
    )


def _text_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train.jsonl", '{"text": "a", "label": "x"}\n')
        archive.writestr("val.jsonl", '{"text": "b", "label": "x"}\n')
    return buffer.getvalue()


async def _upload(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await api.post(
        "/v1/datasets",
        data={"name": name, "format": "text"},
        files={"file": ("d.zip", _text_zip(), "application/zip")},
    )
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()
    return dataset


async def _register(api: httpx.AsyncClient, name: str, folder: Path) -> dict[str, Any]:
    response = await api.post("/v1/datasets", json={"name": name, "uri": folder.as_uri()})
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()
    return dataset


async def _audit(app: FastAPI, action: str) -> list[AuditEvent]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list((await session.execute(query)).scalars())


async def test_deleting_an_upload_removes_its_files_and_is_audited(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    dataset = await _upload(api, "topics")
    store: ObjectStore = app.state.object_store
    prefix = f"datasets/{dataset['project_id']}/{dataset['id']}"
    assert store.list(prefix) != []

    response = await api.delete(f"/v1/datasets/{dataset['id']}")

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert store.list(prefix) == []
    assert (await api.get(f"/v1/datasets/{dataset['id']}")).status_code == 404
    [event] = await _audit(app, "dataset.delete")
    assert (event.target, event.project_id) == (dataset["id"], dataset["project_id"])
    assert event.detail["files_removed"] is True


async def test_deleting_a_registered_folder_keeps_the_folder(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    dataset = await _register(api, "shapes", dataset_dir)

    response = await api.delete(f"/v1/datasets/{dataset['id']}")

    assert response.status_code == 204, response.text
    assert (dataset_dir / "data.yaml").is_file()
    assert (await api.get("/v1/datasets")).json()["items"] == []


async def test_a_dataset_a_running_job_uses_is_409_until_the_job_ends(
    api: httpx.AsyncClient, dataset_dir: Path, job_body: dict[str, Any]
) -> None:
    dataset = await _register(api, "shapes", dataset_dir)
    job = await submit(api, {**job_body, "dataset": "shapes"})

    refused = await api.delete(f"/v1/datasets/{dataset['id']}")

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "dataset_in_use"
    assert job["id"] in refused.json()["detail"]
    assert (await api.get(f"/v1/datasets/{dataset['id']}")).status_code == 200

    assert (await move(api, job["id"], "CANCELLED")).status_code == 200
    assert (await api.delete(f"/v1/datasets/{dataset['id']}")).status_code == 204


async def test_a_viewer_may_not_delete_a_dataset(
    api: httpx.AsyncClient, app: FastAPI, dataset_dir: Path
) -> None:
    dataset = await _register(api, "shapes", dataset_dir)
    viewer = await user_with_key(app, "viewer", {"default": Role.VIEWER})

    async with _client(app, viewer) as client:
        response = await client.delete(f"/v1/datasets/{dataset['id']}")

    assert response.status_code == 403, response.text
    assert (await api.get(f"/v1/datasets/{dataset['id']}")).status_code == 200


async def test_a_dataset_of_another_project_is_not_found(
    api: httpx.AsyncClient, app: FastAPI, dataset_dir: Path
) -> None:
    dataset = await _register(api, "shapes", dataset_dir)
    outsider = await user_with_key(app, "outsider", {"elsewhere": Role.ADMIN})

    async with _client(app, outsider) as client:
        response = await client.delete(f"/v1/datasets/{dataset['id']}")
        missing = await client.delete("/v1/datasets/ds_nothing")

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "dataset_not_found"
    assert response.json() == {**missing.json(), "detail": response.json()["detail"]}
    assert (await api.get(f"/v1/datasets/{dataset['id']}")).status_code == 200
