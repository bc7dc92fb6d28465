"""The fixtures both test trees share, loaded by pytest through this package's `pytest11` entry
point: one Temporal dev server, one moto server and one OpenID Provider per test session (each
xdist worker), and an empty emulated Kubernetes cluster per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import kmock
import pytest
from moto.server import ThreadedMotoServer
from temporalio.testing import WorkflowEnvironment

from trainyard_testing.kubernetes import KubernetesApi, declare_kinds
from trainyard_testing.oidc import OidcProvider, OidcProviderError
from trainyard_testing.temporal import start_dev_server


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server, shared by the session (each test uses its own task queue)."""
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


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


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A real OpenID Provider (oidc-provider on Node), shared by the session; users alice
    (group ml-team) and bob. Tests that rotate its keys leave it with the new key."""
    provider = OidcProvider(tmp_path_factory.mktemp("oidc"))
    try:
        provider.start()
    except OidcProviderError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
async def cluster() -> AsyncIterator[KubernetesApi]:
    """An empty cluster: kmock's emulator serving the Kubernetes API over real HTTP."""
    async with KubernetesApi() as server, kmock.Server(server):
        declare_kinds(server)
        yield server
