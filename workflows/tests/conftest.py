"""Fixtures of the workflows package tests (Temporal, moto and the Kubernetes emulator come from
the shared plugin, platform/testing/trainyard_testing)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from trainyard_testing.s3 import MOTO_KEY, new_bucket
from trainyard_workflows.storage import StorageSettings


@pytest.fixture
def s3_settings(moto_endpoint: str) -> StorageSettings:
    """Storage settings pointing at a fresh bucket of the moto server (one bucket per test)."""
    bucket = new_bucket(moto_endpoint)
    return StorageSettings(
        storage_url=f"s3://{bucket}/root",
        s3_endpoint_url=moto_endpoint,
        s3_access_key_id=MOTO_KEY,
        s3_secret_access_key=SecretStr(MOTO_KEY),
    )
