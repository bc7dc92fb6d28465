"""Bad submissions are refused with 422 naming the field, and leave nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest


async def refused(
    api: httpx.AsyncClient, body: Any, headers: dict[str, str] | None = None
) -> list[str]:
    """Submit `body`, expect 422, check no job was stored; the fields the answer names."""
    response = await api.post("/v1/jobs", json=body, headers=headers or {})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["code"] == "invalid_request"
    assert isinstance(answer["detail"], str)
    assert (await api.get("/v1/jobs")).json()["total"] == 0
    return [error["field"] for error in answer["errors"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"framework": "pytorch-lightning"}, "framework"),
        ({"model": "resnet50"}, "model"),
        ({"model": "yolo11n.onnx"}, "model"),
        ({"model": "yolo99n.yaml"}, "model"),
        ({"model": ""}, "model"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": -3}, "epochs"),
        ({"epochs": "many"}, "epochs"),
        ({"imgsz": 100}, "imgsz"),
        ({"imgsz": 16}, "imgsz"),
        ({"imgsz": 4128}, "imgsz"),
        ({"batch": 0}, "batch"),
        ({"gpus": -1}, "gpus"),
        ({"task": "segment"}, "task"),
        ({"colour": "blue"}, "colour"),
        ({"hyperparameters": {"lr0": 5.0}}, "hyperparameters.lr0"),
        ({"hyperparameters": {"lr0": "0.01"}}, "hyperparameters.lr0"),
        ({"hyperparameters": {"optimizer": "Adagrad"}}, "hyperparameters.optimizer"),
        ({"hyperparameters": {"mosaic": -0.5}}, "hyperparameters.mosaic"),
        ({"hyperparameters": {"cos_lr": "yes"}}, "hyperparameters.cos_lr"),
        ({"hyperparameters": {"epochs": 5}}, "hyperparameters.epochs"),
        ({"hyperparameters": {"data": "/etc"}}, "hyperparameters.data"),
        ({"hyperparameters": "fast"}, "hyperparameters"),
    ],
)
async def test_a_bad_field_is_422_naming_it(
    api: httpx.AsyncClient, job_body: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    assert field in await refused(api, {**job_body, **change})


async def test_a_missing_required_field_is_422_naming_it(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    body = {k: v for k, v in job_body.items() if k != "model"}

    assert await refused(api, body) == ["model"]


@pytest.mark.parametrize(("field", "value"), [("epochs", 10_001), ("gpus", 9), ("batch", 1025)])
async def test_a_value_above_the_platform_limit_is_422_naming_it(
    api: httpx.AsyncClient, job_body: dict[str, Any], field: str, value: int
) -> None:
    assert await refused(api, {**job_body, field: value}) == [field]


async def test_an_unknown_dataset_name_is_422_naming_dataset(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    assert await refused(api, {**job_body, "dataset": "no-such-dataset"}) == ["dataset"]


async def test_a_file_uri_to_a_missing_folder_is_422_naming_dataset(
    api: httpx.AsyncClient, job_body: dict[str, Any], tmp_path: Path
) -> None:
    missing = (tmp_path / "nowhere").as_uri()

    assert await refused(api, {**job_body, "dataset": missing}) == ["dataset"]


async def test_a_file_uri_to_a_file_is_422_naming_dataset(
    api: httpx.AsyncClient, job_body: dict[str, Any], dataset_dir: Path
) -> None:
    a_file = (dataset_dir / "data.yaml").as_uri()

    assert await refused(api, {**job_body, "dataset": a_file}) == ["dataset"]


async def test_an_s3_uri_while_storage_is_local_is_422_naming_dataset(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    assert await refused(api, {**job_body, "dataset": "s3://bucket/shapes"}) == ["dataset"]


@pytest.mark.parametrize("dataset", ["https://example.com/shapes.zip", "ftp://host/shapes"])
async def test_an_unknown_uri_scheme_is_422_naming_dataset(
    api: httpx.AsyncClient, job_body: dict[str, Any], dataset: str
) -> None:
    assert await refused(api, {**job_body, "dataset": dataset}) == ["dataset"]


async def test_several_bad_fields_are_all_named(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    fields = await refused(api, {**job_body, "model": "resnet", "epochs": 0, "imgsz": 33})

    assert set(fields) == {"model", "epochs", "imgsz"}


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"", b'{"model": NaN}', b"null"]
)
async def test_a_body_that_is_not_a_json_object_is_422(api: httpx.AsyncClient, raw: bytes) -> None:
    response = await api.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"


async def test_an_empty_idempotency_key_is_422_naming_it(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    assert await refused(api, job_body, {"Idempotency-Key": ""}) == ["Idempotency-Key"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"state": "SLEEPING"}, "state"),
    ],
)
async def test_bad_list_parameters_are_422_naming_them(
    api: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await api.get("/v1/jobs", params=params)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_a_negative_after_seq_is_422(
    api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    response = await api.get("/v1/jobs/job_x/events", params={"after_seq": -1})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["after_seq"]
