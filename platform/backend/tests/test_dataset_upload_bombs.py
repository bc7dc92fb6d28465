"""Zip bombs and oversize uploads are refused from the zip's central directory, before anything
is extracted, and nothing is written to storage; the project's storage quota bounds uploads."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from trainyard.core.settings import BackendSettings
from trainyard.datasets.upload import _Counted
from trainyard.main import create_app
from trainyard_workflows.storage import ObjectStore, StorageSettings, object_store_from

from .conftest import make_settings
from .support import serving
from .test_datasets_upload import make_zip, upload, yolo_files

# A small upload limit, so an "over the total" zip stays small.
MAX_UPLOAD = 1_000_000


# Tests that send larger zips (many entries) raise it.
ROOMY = 64 * 1024 * 1024


@pytest.fixture
def max_upload() -> int:
    return MAX_UPLOAD


@pytest.fixture
def storage(tmp_path: Path, max_upload: int) -> StorageSettings:
    return StorageSettings(storage_url=(tmp_path / "storage").as_uri(), max_upload_bytes=max_upload)


@pytest.fixture
def store(storage: StorageSettings) -> ObjectStore:
    return object_store_from(storage)


@pytest.fixture
def quota() -> int | None:
    return None


@pytest.fixture
def settings(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object], quota: int | None
) -> BackendSettings:
    return make_settings(
        tmp_path / "data", temporal_address, project_storage_quota_bytes=quota, **backend_tier
    )


@pytest.fixture
async def api(
    settings: BackendSettings, storage: StorageSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings, storage)) as client:
        yield client


def zeros_zip(entries: dict[str, int]) -> bytes:
    """A zip of entries of zeros (name -> size), deflated: tiny whatever the sizes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, size in entries.items():
            archive.writestr(name, bytes(size))
    return buffer.getvalue()


def understating_entry_count(data: bytes, count: int) -> bytes:
    """The same zip with its end record declaring `count` entries."""
    at = data.rfind(b"PK\x05\x06")
    patched = bytearray(data)
    patched[at + 8 : at + 12] = count.to_bytes(2, "little") * 2
    return bytes(patched)


async def _datasets(api: httpx.AsyncClient) -> list[str]:
    listed = await api.get("/v1/datasets")
    assert listed.status_code == 200, listed.text
    return [d["name"] for d in listed.json()["items"]]


@pytest.mark.parametrize("max_upload", [ROOMY])
async def test_a_ratio_bomb_is_413_naming_the_limit_and_nothing_is_written(
    api: httpx.AsyncClient, store: ObjectStore, settings: BackendSettings
) -> None:
    # ~20 KB that expands to 20 MiB in one entry (ratio ~1000), well within the total limit.
    bomb = zeros_zip({"data.yaml": 100, "images/train/bomb.bin": 20 * 1024 * 1024})
    assert len(bomb) < 50_000

    response = await upload(api, "bomb", bomb)

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "zip_ratio_too_high"
    assert re.fullmatch(
        r"zip entry 'images/train/bomb\.bin' expands 10\d\d times, more than the limit of "
        rf"{settings.max_compression_ratio:g} \(TRAINYARD_MAX_COMPRESSION_RATIO\)",
        response.json()["detail"],
    )
    assert store.list() == []
    assert await _datasets(api) == []


@pytest.mark.parametrize("max_upload", [ROOMY])
async def test_a_small_entry_is_not_judged_by_its_ratio(api: httpx.AsyncClient) -> None:
    # 800 KB of zeros (ratio ~1000) under the 1 MiB floor: a harmless file, taken.
    response = await upload(api, "zeros", make_zip(yolo_files(**{"pad.bin": bytes(800_000)})))

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("max_upload", [ROOMY])
async def test_an_entry_count_bomb_is_413_before_the_directory_is_parsed(
    api: httpx.AsyncClient, store: ObjectStore, settings: BackendSettings
) -> None:
    bomb = zeros_zip({f"f{i}": 0 for i in range(settings.max_dataset_entries * 2)})

    response = await upload(api, "many", bomb)

    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": f"the dataset holds {settings.max_dataset_entries * 2} entries, more than the "
        f"limit of {settings.max_dataset_entries} (TRAINYARD_MAX_DATASET_ENTRIES)",
        "code": "dataset_too_many_entries",
    }
    assert store.list() == []
    assert await _datasets(api) == []


@pytest.mark.parametrize("max_upload", [ROOMY])
async def test_an_entry_count_bomb_whose_end_record_lies_is_refused_too(
    api: httpx.AsyncClient, store: ObjectStore, settings: BackendSettings
) -> None:
    bomb = zeros_zip({f"f{i}": 0 for i in range(settings.max_dataset_entries + 1)})

    response = await upload(api, "many", understating_entry_count(bomb, 3))

    # Its central directory is far larger than 3 entries need: refused before it is parsed.
    assert response.status_code == 422, response.text
    assert "central directory is larger than its entries" in response.json()["detail"]
    assert store.list() == []
    assert await _datasets(api) == []


async def test_a_zip_over_the_uncompressed_total_is_413_and_nothing_is_written(
    api: httpx.AsyncClient, store: ObjectStore
) -> None:
    # Entries under 1 MiB each (no ratio judged), 3 MB in all: only the total refuses it.
    bomb = zeros_zip({"data.yaml": 10, **{f"images/train/{i}.bin": 100_000 for i in range(30)}})
    assert len(bomb) < MAX_UPLOAD

    response = await upload(api, "big", bomb)

    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": f"the dataset expands to more than the limit of {MAX_UPLOAD} bytes "
        "(TRAINYARD_MAX_UPLOAD_BYTES)",
        "code": "dataset_too_large",
    }
    assert store.list() == []
    assert await _datasets(api) == []


def test_extraction_stops_at_the_size_an_entry_declared() -> None:
    # A central directory that understates an entry gains nothing: the copy stops there.
    reader = _Counted(io.BytesIO(b"x" * 100), 10)

    assert reader.read(4) == b"xxxx"
    with pytest.raises(zipfile.BadZipFile, match="larger than declared"):
        reader.read(1024)


@pytest.mark.parametrize("quota", [20_000])
async def test_an_upload_past_the_project_storage_quota_is_413_and_nothing_is_written(
    api: httpx.AsyncClient, store: ObjectStore, quota: int
) -> None:
    first = await upload(api, "first", make_zip(yolo_files(**{"pad.txt": bytes(12_000)})))
    assert first.status_code == 201, first.text
    stored = {info.key for info in store.list()}

    second = await upload(api, "second", make_zip(yolo_files(**{"pad.txt": bytes(12_000)})))

    assert second.status_code == 413, second.text
    assert second.json()["code"] == "storage_quota_exceeded"
    assert "TRAINYARD_PROJECT_STORAGE_QUOTA_BYTES" in second.json()["detail"]
    assert {info.key for info in store.list()} == stored
    assert await _datasets(api) == ["first"]

    # Deleting the first frees its share of the quota.
    deleted = await api.delete(f"/v1/datasets/{first.json()['id']}")
    assert deleted.status_code == 204, deleted.text
    again = await upload(api, "second", make_zip(yolo_files(**{"pad.txt": bytes(12_000)})))
    assert again.status_code == 201, again.text
