"""Object storage: one API over a local folder (`file://`) and S3-compatible buckets (`s3://`).

The tier is configuration only: `object_store_from(StorageSettings())` picks the
implementation; nothing else knows which one it got.
"""

from trainyard_workflows.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StorageUnavailable,
)
from trainyard_workflows.storage.factory import (
    key_in_storage,
    object_store_for_uri,
    object_store_from,
)
from trainyard_workflows.storage.settings import StorageSettings
from trainyard_workflows.storage.uris import StorageUri, StorageUriError, parse_storage_uri

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StorageError",
    "StorageSettings",
    "StorageUnavailable",
    "StorageUri",
    "StorageUriError",
    "key_in_storage",
    "object_store_for_uri",
    "object_store_from",
    "parse_storage_uri",
]
