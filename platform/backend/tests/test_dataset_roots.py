"""file:// registration only below the allowed roots, with one answer for a folder that is
missing, not a folder or not allowed (no existence oracle), and a walk that stops at the
limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from trainyard.core.settings import BackendSettings
from trainyard.datasets.location import dataset_roots

from .conftest import make_settings


async def _register(api: httpx.AsyncClient, uri: str) -> httpx.Response:
    return await api.post("/v1/datasets", json={"name": "probe", "uri": uri})


async def test_a_forbidden_a_missing_and_a_non_folder_location_get_the_same_answer(
    api: httpx.AsyncClient, tmp_path: Path, dataset_dir: Path
) -> None:
    (tmp_path / "escape").symlink_to("/etc")
    candidates = [
        "file:///etc",  # exists, outside the roots
        "file:///root/.ssh",
        (tmp_path / "missing").as_uri(),  # inside the roots, missing
        (dataset_dir / "data.yaml").as_uri(),  # inside the roots, a file
        (tmp_path / "escape").as_uri(),  # a link inside the roots to /etc
    ]

    answers = [await _register(api, uri) for uri in candidates]

    assert {(a.status_code, a.content) for a in answers} == {
        (
            422,
            b'{"detail":"uri: not an existing folder below the allowed dataset roots '
            b'(TRAINYARD_DATASET_ROOTS)","code":"dataset_folder_refused","errors":[{"field":'
            b'"uri","message":"not an existing folder below the allowed dataset roots '
            b'(TRAINYARD_DATASET_ROOTS)"}]}',
        )
    }
    assert (await api.get("/v1/datasets")).json()["items"] == []


async def test_a_folder_below_the_roots_is_registered_by_its_resolved_path(
    api: httpx.AsyncClient, tmp_path: Path, dataset_dir: Path
) -> None:
    (tmp_path / "alias").symlink_to(dataset_dir)

    response = await _register(api, (tmp_path / "alias").as_uri())

    assert response.status_code == 201, response.text
    assert response.json()["uri"] == dataset_dir.as_uri()  # tmp_path is a resolved path


async def test_a_link_inside_the_folder_to_outside_the_roots_is_refused(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    (dataset_dir / "secrets").symlink_to("/etc")

    response = await _register(api, dataset_dir.as_uri())

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "uri", "message": "'secrets' links outside the allowed dataset roots"}
    ]


@pytest.fixture
def settings(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> BackendSettings:
    return make_settings(tmp_path / "data", temporal_address, max_dataset_entries=5, **backend_tier)


async def test_the_walk_of_a_registered_folder_stops_at_the_entry_limit(
    api: httpx.AsyncClient, dataset_dir: Path
) -> None:
    for i in range(20):
        (dataset_dir / f"{i}.txt").write_text("x")

    response = await _register(api, dataset_dir.as_uri())

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "dataset_too_many_entries"
    assert "more than the limit of 5" in response.json()["detail"]
    assert (await api.get("/v1/datasets")).json()["items"] == []


def _defaults(tmp_path: Path, **values: object) -> BackendSettings:
    return BackendSettings.model_validate({"data_dir": tmp_path / "data", **values})


def test_the_embedded_tier_allows_the_home_folder_and_the_data_folder(tmp_path: Path) -> None:
    assert dataset_roots(_defaults(tmp_path)) == [Path.home().resolve(), tmp_path / "data"]


def test_production_allows_only_the_data_folder_unless_configured(tmp_path: Path) -> None:
    production = {
        "database_url": "postgresql+asyncpg://u@db/trainyard",
        "internal_token": SecretStr("i" * 32),
        "callback_secret": SecretStr("c" * 32),
    }

    assert dataset_roots(_defaults(tmp_path, **production)) == [tmp_path / "data"]
    assert dataset_roots(_defaults(tmp_path, dataset_roots=[tmp_path / "sets"], **production)) == [
        tmp_path / "sets"
    ]
