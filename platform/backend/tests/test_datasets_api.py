"""The dataset registry: register a folder under a name, list it, read it by id or name."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest


async def register(api: httpx.AsyncClient, name: str, uri: str) -> httpx.Response:
    return await api.post("/v1/datasets", json={"name": name, "uri": uri, "format": "yolo"})


async def test_a_registered_dataset_is_readable_by_id_and_by_name(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    created = await register(api, "shapes", dataset_dir.as_uri())

    assert created.status_code == 201
    dataset = created.json()
    assert dataset["id"].startswith("ds_")
    assert (dataset["name"], dataset["uri"], dataset["format"], dataset["owner"]) == (
        "shapes",
        dataset_dir.as_uri(),
        "yolo",
        "local",
    )
    assert (await api.get(f"/v1/datasets/{dataset['id']}")).json() == dataset
    assert (await api.get("/v1/datasets/shapes")).json() == dataset
    assert (await api.get("/v1/datasets")).json() == {"items": [dataset]}


async def test_the_uri_is_stored_in_its_plain_form(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    created = await register(api, "shapes", f"file://localhost{dataset_dir}/")

    assert created.json()["uri"] == dataset_dir.as_uri()


async def test_the_same_name_again_is_409(api: httpx.AsyncClient, dataset_dir: Path) -> None:
    assert (await register(api, "shapes", dataset_dir.as_uri())).status_code == 201

    again = await register(api, "shapes", dataset_dir.as_uri())

    assert again.status_code == 409
    assert again.json()["code"] == "dataset_exists"
    assert len((await api.get("/v1/datasets")).json()["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "shapes", "uri": "file:///definitely/not/here"}, "uri"),
        ({"name": "shapes", "uri": "https://example.com/shapes.zip"}, "uri"),
        ({"name": "shapes", "uri": "file://otherhost/data"}, "uri"),
        ({"name": "../etc", "uri": "file:///tmp"}, "name"),
        ({"name": "file:///tmp", "uri": "file:///tmp"}, "name"),
        ({"name": "shapes", "uri": "file:///tmp", "format": "coco"}, "format"),
        ({"name": "shapes", "uri": "file:///tmp", "size": 3}, "size"),
        ({"uri": "file:///tmp"}, "name"),
    ],
)
async def test_a_bad_registration_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    response = await api.post("/v1/datasets", json=body)

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await api.get("/v1/datasets")).json()["items"] == []


async def test_an_unknown_dataset_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/datasets/nothing")

    assert response.status_code == 404
    assert response.json()["code"] == "dataset_not_found"
