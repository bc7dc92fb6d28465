"""The object store API behaves the same over a local folder and over S3 (moto server)."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from pydantic import SecretStr

from trainyard_workflows.storage import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageSettings,
    StorageUnavailable,
    StorageUriError,
    key_in_storage,
    object_store_for_uri,
    object_store_from,
    parse_storage_uri,
)


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return object_store_from(StorageSettings(storage_url=(tmp_path / "store").as_uri()))
    settings: StorageSettings = request.getfixturevalue("s3_settings")
    return object_store_from(settings)


def test_objects_written_can_be_read_listed_copied_and_deleted(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.check()
    store.put_bytes("datasets/a/data.yaml", b"names: [cat]\n")
    store.put_stream("datasets/a/images/x.png", io.BytesIO(b"png" * 1000))
    source = tmp_path / "local.txt"
    source.write_bytes(b"hello")
    store.put_file("jobs/j/attempt-1/weights/last.pt", source)

    assert store.get_bytes("datasets/a/data.yaml") == b"names: [cat]\n"
    assert store.exists("datasets/a/images/x.png")
    assert not store.exists("datasets/a/images")
    assert store.list("datasets/a") == [
        ObjectInfo("datasets/a/data.yaml", 13),
        ObjectInfo("datasets/a/images/x.png", 3000),
    ]
    assert [info.key for info in store.list()] == [
        "datasets/a/data.yaml",
        "datasets/a/images/x.png",
        "jobs/j/attempt-1/weights/last.pt",
    ]

    store.copy("jobs/j/attempt-1/weights/last.pt", "jobs/j/attempt-1/weights/best.pt")
    target = tmp_path / "down" / "best.pt"
    store.download_file("jobs/j/attempt-1/weights/best.pt", target)
    assert target.read_bytes() == b"hello"

    assert store.delete_prefix("datasets") == 2
    store.delete("jobs/j/attempt-1/weights/last.pt")
    store.delete("never/written")
    assert [info.key for info in store.list()] == ["jobs/j/attempt-1/weights/best.pt"]


def test_a_missing_object_raises_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_bytes("nothing/here.txt")
    with pytest.raises(ObjectNotFound):
        store.download_file("nothing/here.txt", tmp_path / "x")
    assert store.list("nothing") == []


@pytest.mark.parametrize("key", ["../escape.txt", "/abs/key", "a/../../b", ""])
def test_keys_that_could_escape_the_root_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(StorageUriError):
        store.put_bytes(key, b"x")


def test_uris_name_objects_below_the_root(store: ObjectStore) -> None:
    uri = store.uri_for("datasets/o/ds_1")
    assert uri.startswith(store.root.uri + "/")
    assert parse_storage_uri(uri) == store.root.child("datasets/o/ds_1")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_s3_endpoint_is_storage_unavailable() -> None:
    settings = StorageSettings(
        storage_url="s3://bucket",
        s3_endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        s3_access_key_id="testing",
        s3_secret_access_key=SecretStr("testing"),
        s3_connect_timeout_s=1,
        s3_max_attempts=1,
    )
    store = object_store_from(settings)

    with pytest.raises(StorageUnavailable, match="unreachable"):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.put_bytes("a.txt", b"x")


def test_a_missing_bucket_is_storage_unavailable_naming_it(s3_settings: StorageSettings) -> None:
    settings = s3_settings.model_copy(update={"storage_url": "s3://no-such-bucket"})

    with pytest.raises(StorageUnavailable, match="no-such-bucket"):
        object_store_from(settings).check()


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://example.com/data", "'http://'"),
        ("data/shapes", "no scheme"),
        ("file:///data/../etc", "'..'"),
        ("s3://bucket/a/../../b", "'..'"),
        ("file://otherhost/data", "another host"),
        ("s3://B_/x", "valid bucket"),
        ("file:///data?x=1", "query"),
    ],
)
def test_bad_uris_are_refused_with_the_reason(uri: str, reason: str) -> None:
    with pytest.raises(StorageUriError, match=reason.replace("?", r"\?")):
        parse_storage_uri(uri)


def test_uris_are_normalised() -> None:
    assert parse_storage_uri("file://localhost/data//shapes/").uri == "file:///data/shapes"
    assert parse_storage_uri("s3://bucket/a/b/").uri == "s3://bucket/a/b"
    assert parse_storage_uri("s3://bucket").uri == "s3://bucket"


def test_s3_uris_must_lie_inside_the_configured_bucket_and_prefix(
    s3_settings: StorageSettings,
) -> None:
    root = parse_storage_uri(s3_settings.storage_url)
    store, prefix = object_store_for_uri(s3_settings, f"{root.uri}/datasets/o/x")
    assert prefix == "datasets/o/x"
    assert store.root == root

    for outside in (f"s3://{root.bucket}/elsewhere", "s3://another-bucket/root/x"):
        with pytest.raises(StorageUriError, match="outside the configured storage"):
            object_store_for_uri(s3_settings, outside)


def test_s3_uris_are_refused_when_storage_is_a_local_folder(tmp_path: Path) -> None:
    settings = StorageSettings(storage_url=tmp_path.as_uri())

    with pytest.raises(StorageUriError, match="TRAINYARD_STORAGE_URL"):
        object_store_for_uri(settings, "s3://bucket/x")


def test_the_key_of_an_s3_uri_in_storage_is_known_without_contacting_storage() -> None:
    unreachable = StorageSettings(
        storage_url="s3://bucket/root", s3_endpoint_url=f"http://127.0.0.1:{_closed_port()}"
    )

    assert key_in_storage(unreachable, "s3://bucket/root/datasets/my%20set") == "datasets/my set"
    with pytest.raises(StorageUriError, match="outside the configured storage"):
        key_in_storage(unreachable, "s3://bucket/rooted/x")


def test_storage_defaults_to_a_folder_in_the_data_dir(tmp_path: Path) -> None:
    settings = StorageSettings(data_dir=tmp_path)

    assert settings.storage_url == (tmp_path / "storage").as_uri()
    assert settings.trainer_env() == {}


def test_trainer_env_carries_s3_credentials_as_boto3_variables(
    s3_settings: StorageSettings,
) -> None:
    assert s3_settings.trainer_env() == {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_settings.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    assert "testing" not in repr(s3_settings.s3_secret_access_key)


def test_a_malformed_storage_url_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="TRAINYARD_STORAGE_URL"):
        StorageSettings(storage_url="ftp://host/x")
