"""The one place that knows which storage implementation a URL means."""

from __future__ import annotations

from pathlib import Path

from trainyard_workflows.storage.base import ObjectStore
from trainyard_workflows.storage.local import LocalObjectStore
from trainyard_workflows.storage.s3 import S3ObjectStore
from trainyard_workflows.storage.settings import StorageSettings
from trainyard_workflows.storage.uris import StorageUri, StorageUriError, parse_storage_uri


def object_store_from(settings: StorageSettings) -> ObjectStore:
    """The configured storage (`TRAINYARD_STORAGE_URL`)."""
    root = parse_storage_uri(settings.storage_url)
    if root.scheme == "s3":
        return S3ObjectStore(root, settings)
    return LocalObjectStore(Path(root.path))


def object_store_for_uri(
    settings: StorageSettings, uri: str | StorageUri
) -> tuple[ObjectStore, str]:
    """A store and key prefix from which to read the dataset (or any folder) at `uri`.

    file:// URIs may name any local folder (a registered dataset outside the storage root);
    s3:// URIs must lie inside the configured bucket and prefix, because those are the only
    credentials we hold. StorageUriError otherwise.
    """
    parsed = parse_storage_uri(uri) if isinstance(uri, str) else uri
    if parsed.scheme == "file":
        return LocalObjectStore(Path(parsed.path)), ""
    prefix = key_in_storage(settings, parsed)
    return S3ObjectStore(parse_storage_uri(settings.storage_url), settings), prefix


def key_in_storage(settings: StorageSettings, uri: str | StorageUri) -> str:
    """The key prefix of the s3:// `uri` below the configured storage root, checked without
    contacting storage; StorageUriError when storage is not S3 or `uri` lies outside it."""
    parsed = parse_storage_uri(uri) if isinstance(uri, str) else uri
    configured = parse_storage_uri(settings.storage_url)
    if parsed.scheme == "s3" and configured.scheme != "s3":
        raise StorageUriError(
            f"{parsed.uri} is an s3:// URI but storage is {configured.uri} "
            "(set TRAINYARD_STORAGE_URL to the bucket)"
        )
    return configured.key_below(parsed)
