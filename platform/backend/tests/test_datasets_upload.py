"""Dataset uploads and registrations against local storage and S3 (moto in server mode):
upload -> stored -> validated, and every bad input refused with nothing left behind."""

from __future__ import annotations

import asyncio
import io
import random
import socket
import stat
import threading
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import httpx
import pytest
import yaml
from fastapi import FastAPI
from PIL import Image
from pydantic import SecretStr

from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard_workflows.storage import ObjectStore, StorageSettings, object_store_from


def s3_storage(endpoint: str, bucket: str, **overrides: object) -> StorageSettings:
    values: dict[str, object] = {
        "storage_url": f"s3://{bucket}/trainyard",
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": "testing",
        "s3_secret_access_key": SecretStr("testing"),
        "max_upload_bytes": 1_000_000,
    }
    values.update(overrides)
    return StorageSettings.model_validate(values)


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSettings:
    """Local storage, or a fresh bucket of the moto server; a 1 MB upload limit."""
    if request.param == "file":
        return StorageSettings(
            storage_url=(tmp_path / "storage").as_uri(), max_upload_bytes=1_000_000
        )
    endpoint: str = request.getfixturevalue("moto_endpoint")
    bucket = f"ds-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return s3_storage(endpoint, bucket)


@pytest.fixture
def store(storage: StorageSettings) -> ObjectStore:
    return object_store_from(storage)


async def _client(
    settings: BackendSettings, storage: StorageSettings
) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings, storage)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://trainyard.test"
        ) as client,
    ):
        yield client


@pytest.fixture
async def api(
    settings: BackendSettings, storage: StorageSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings, storage):
        yield client


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 10, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def yolo_files(**extra: bytes) -> dict[str, bytes]:
    files = {
        "data.yaml": yaml.safe_dump(
            {"train": "images/train", "val": "images/val", "names": ["a", "b"]}
        ).encode(),
        "images/train/x.png": png(1),
        "labels/train/x.txt": b"0 0.5 0.5 0.2 0.2\n",
        "images/train/y.png": png(2),
        "labels/train/y.txt": b"1 0.5 0.5 0.2 0.2\n",
        "images/val/z.png": png(3),
        "labels/val/z.txt": b"1 0.5 0.5 0.2 0.2\n",
    }
    files.update(extra)
    return files


def make_zip(files: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


async def upload(
    api: httpx.AsyncClient, name: str, data: bytes, dataset_format: str = "yolo"
) -> httpx.Response:
    return await api.post(
        "/v1/datasets",
        data={"name": name, "format": dataset_format},
        files={"file": ("dataset.zip", data, "application/zip")},
    )


async def test_an_uploaded_yolo_zip_is_stored_under_the_project_and_validated(
    api: httpx.AsyncClient, store: ObjectStore
) -> None:
    response = await upload(api, "shapes", make_zip(yolo_files()))

    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["status"] == "valid"
    assert dataset["uri"] == store.uri_for(f"datasets/default/{dataset['id']}")
    report = dataset["report"]
    assert report["ok"]
    assert report["format"] == "yolo"
    assert report["counts"]["train"]["images"] == 2
    assert report["class_histogram"] == {"a": 1, "b": 2}
    keys = [info.key for info in store.list()]
    assert keys == sorted(f"datasets/default/{dataset['id']}/{name}" for name in yolo_files())
    assert (await api.get("/v1/datasets/shapes")).json() == dataset


async def test_a_zip_of_a_folder_is_stored_as_the_folder_content(
    api: httpx.AsyncClient, store: ObjectStore
) -> None:
    files = {f"shapes/{name}": data for name, data in yolo_files().items()}

    dataset = (await upload(api, "shapes", make_zip(files))).json()

    assert dataset["status"] == "valid", dataset
    assert store.exists(f"datasets/default/{dataset['id']}/data.yaml")


async def test_a_corrupt_image_and_a_malformed_label_are_in_the_report(
    api: httpx.AsyncClient,
) -> None:
    broken = yolo_files(
        **{
            "images/val/bad.png": b"\x89PNG\r\n\x1a\n not a png",
            "labels/val/bad.txt": b"0 0.5 0.5\n",
            "images/train/w.png": png(3),  # same content as val/z.png
            "images/train/unlabelled.png": png(9),
        }
    )

    dataset = (await upload(api, "broken", make_zip(broken))).json()

    assert dataset["status"] == "invalid"
    report = dataset["report"]
    assert "val: images/val/bad.png is not a readable image" in report["errors"]
    assert (
        "val: labels/val/bad.txt line 1: expected 5 numbers (class x y w h), got 3"
        in report["errors"]
    )
    assert report["corrupt_images"] == ["images/val/bad.png"]
    assert report["images_without_labels"] == ["images/train/unlabelled.png", "images/train/w.png"]
    assert report["train_val_overlap"] == ["images/train/w.png = images/val/z.png"]


async def test_an_imagefolder_upload_is_validated_as_classification(
    api: httpx.AsyncClient,
) -> None:
    files = {
        "train/cat/1.png": png(1),
        "train/dog/2.png": png(2),
        "val/cat/3.png": png(3),
        "val/dog/4.png": png(4),
    }

    good = (await upload(api, "pets", make_zip(files), "imagefolder")).json()

    assert good["status"] == "valid", good["report"]
    assert good["report"]["class_histogram"] == {"cat": 1, "dog": 1}
    assert good["report"]["counts"]["val"]["images"] == 2

    files["val/bird/5.png"] = b"garbage"
    bad = (await upload(api, "pets2", make_zip(files), "imagefolder")).json()

    assert bad["status"] == "invalid"
    assert bad["report"]["errors"] == [
        "val: val/bird/5.png is not a readable image",
        "val: class 'bird' has no readable images",
        "train and val have different classes (only in val: bird)",
    ]


@pytest.mark.parametrize(
    ("zip_bytes", "reason"),
    [
        (make_zip({"../escape.txt": b"x", **yolo_files()}), "escapes the dataset folder"),
        (make_zip({"a/../../escape.txt": b"x"}), "escapes the dataset folder"),
        (make_zip({"/etc/cron.d/x": b"x"}), "absolute"),
        (make_zip(yolo_files(), symlink="images/train/link.png"), "symlink"),
        (b"not a zip at all", "not a zip"),
    ],
)
async def test_a_dangerous_or_broken_zip_is_422_and_nothing_is_written(
    api: httpx.AsyncClient, store: ObjectStore, tmp_path: Path, zip_bytes: bytes, reason: str
) -> None:
    response = await upload(api, "evil", zip_bytes)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "file"
    assert reason in response.json()["detail"]
    assert store.list() == []
    assert not (tmp_path / "escape.txt").exists()
    assert (await api.get("/v1/datasets")).json()["items"] == []


async def test_an_upload_over_the_size_limit_is_413_and_nothing_is_written(
    api: httpx.AsyncClient, store: ObjectStore
) -> None:
    big = make_zip({"noise.bin": random.Random(0).randbytes(1_300_000)})  # incompressible

    response = await upload(api, "big", big)

    assert response.status_code == 413
    # Refused from its Content-Length, before the body is read (core/body_limits.py).
    assert response.json()["code"] == "request_too_large"
    assert store.list() == []


async def test_a_taken_name_is_409_before_anything_is_stored(
    api: httpx.AsyncClient, store: ObjectStore
) -> None:
    first = (await upload(api, "shapes", make_zip(yolo_files()))).json()

    again = await upload(api, "shapes", make_zip(yolo_files()))

    assert again.status_code == 409
    assert {info.key.split("/")[2] for info in store.list()} == {first["id"]}


async def test_an_existing_prefix_in_the_bucket_can_be_registered(
    api: httpx.AsyncClient, store: ObjectStore
) -> None:
    for name, data in yolo_files().items():
        store.put_bytes(f"shared/shapes/{name}", data)

    response = await api.post(
        "/v1/datasets", json={"name": "shapes", "uri": store.uri_for("shared/shapes")}
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "valid"
    assert response.json()["uri"] == store.uri_for("shared/shapes")


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://host/data",
        "s3://other-bucket/data",
        "file:///data/../etc",
        "s3://bucket/a/../../b",
    ],
)
async def test_a_bad_dataset_uri_is_422_naming_uri(api: httpx.AsyncClient, uri: str) -> None:
    response = await api.post("/v1/datasets", json={"name": "x", "uri": uri})

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["uri"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
async def test_storage_down_is_503_with_a_clear_message(settings: BackendSettings) -> None:
    down = s3_storage(
        f"http://127.0.0.1:{_closed_port()}", "bucket", s3_connect_timeout_s=1, s3_max_attempts=1
    )
    async for api in _client(settings, down):
        uploaded = await upload(api, "shapes", make_zip(yolo_files()))
        registered = await api.post(
            "/v1/datasets", json={"name": "shapes", "uri": "s3://bucket/trainyard/x"}
        )

        for response in (uploaded, registered):
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "storage_unavailable"
            assert response.json()["detail"].startswith("dataset storage is unavailable")
        assert (await api.get("/v1/datasets")).json()["items"] == []


class StalledStorage:
    """An S3 endpoint that accepts connections and answers nothing until released, then hangs
    up: a storage call is in flight for as long as the test wants."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reached = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with self._listener:
            connection, _ = self._listener.accept()
            self.reached.set()
            self.release.wait(30)
            connection.close()


@pytest.mark.parametrize("backend_tier", ["sqlite"], indirect=True)
async def test_no_transaction_is_open_while_storage_is_read(settings: BackendSettings) -> None:
    stalled = StalledStorage()
    storage = s3_storage(f"http://127.0.0.1:{stalled.port}", "bucket", s3_max_attempts=1)
    async for api in _client(settings, storage):
        registering = asyncio.create_task(
            api.post("/v1/datasets", json={"name": "shapes", "uri": "s3://bucket/trainyard/x"})
        )
        assert await asyncio.to_thread(stalled.reached.wait, 10)
        try:
            # SQLite's one connection is free while the registration waits on storage.
            async with asyncio.timeout(5):
                others = await api.get("/v1/datasets")
            assert others.status_code == 200
            assert not registering.done()
        finally:
            stalled.release.set()
        assert (await registering).status_code == 503
