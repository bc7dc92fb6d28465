"""The fixtures both test trees share, loaded by pytest through this package's `pytest11` entry
point: one Temporal dev server, one moto server and one OpenID Provider per test session (each
xdist worker), and an empty emulated Kubernetes cluster per test. And one check over the whole
session: no credential the tests remembered appears in a log (credential_leaks.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import kmock
import pytest
from moto.server import ThreadedMotoServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from trainyard_testing import credential_leaks
from trainyard_testing.kubernetes import KubernetesApi, declare_kinds
from trainyard_testing.oidc import OidcProvider, OidcProviderError
from trainyard_testing.spans import install_tracing, recording
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


# --- no credential in a log ------------------------------------------------------------------

_REGISTRY = pytest.StashKey[credential_leaks.CredentialRegistry]()
_TMP_PATHS = pytest.StashKey[pytest.TempPathFactory]()
# What a worker found travels to the controller in xdist's workeroutput under this name.
_WORKER_OUTPUT = "trainyard_credential_leaks"


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_REGISTRY] = credential_leaks.begin_session()


@pytest.fixture(scope="session", autouse=True)
def _tracing() -> None:
    """Tracing on from the start, as in every API and worker process (configure_tracing): the
    spans are real whatever test runs first."""
    install_tracing()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the test's process ends during the test (the API and worker in-process)."""
    with recording() as exporter:
        yield exporter


@pytest.fixture(scope="session", autouse=True)
def _credential_scan_root(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keeps the session's tmp_path_factory for the scan at its end (hooks get no fixtures)."""
    request.config.stash[_TMP_PATHS] = tmp_path_factory


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # What the test printed and logged (pytest drops it for passing tests: search it now).
    # The teardown report carries the sections of all three phases.
    registry = credential_leaks.current_session()
    if registry is None or report.when != "teardown":
        return
    for title, content in report.sections:
        if title.startswith("Captured"):
            registry.search_text(f"{report.nodeid} ({title.lower()})", content)


@pytest.hookimpl(tryfirst=True)  # before the tmpdir plugin may remove the base temp directory
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    registry = config.stash.get(_REGISTRY, None)
    if registry is None:
        return
    try:
        tmp_paths = config.stash.get(_TMP_PATHS, None)
        if tmp_paths is not None:
            registry.search_tree(tmp_paths.getbasetemp())
    finally:
        credential_leaks.end_session(registry)
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and fails the run
        # Plain lists: what execnet carries.
        workeroutput[_WORKER_OUTPUT] = [
            [leak.where, leak.what, leak.shown] for leak in registry.leaks
        ]
    elif registry.leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller, as a worker ends: take over what it found."""
    found: list[list[str]] = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT, [])
    registry = node.config.stash.get(_REGISTRY, None)
    if registry is not None:
        registry.leaks.extend(credential_leaks.Leak(*leak) for leak in found)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    registry = terminalreporter.config.stash.get(_REGISTRY, None)
    if registry is None or not registry.leaks:
        return
    terminalreporter.write_sep("=", "credentials found in logs (issue 19)", red=True)
    for leak in registry.leaks:
        terminalreporter.write_line(leak.describe(), red=True)
    terminalreporter.write_line(
        "A token, key, cookie or ticket that a test remembered (remember_credential) was "
        "written to the files above: find who logs it and redact it there.",
        red=True,
    )
