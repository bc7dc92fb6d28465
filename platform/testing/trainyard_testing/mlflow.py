"""A real MLflow server for the tests, started as the embedded tier starts it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trainyard.cli.embedded import free_local_port
from trainyard.cli.embedded_services import mlflow_server_command, mlflow_server_env

START_S = 180  # a fresh SQLite store runs all of MLflow's migrations first


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The server (in its own process group, as the embedded tier starts it) and its URL once
    it answers /health; its whole group is killed afterwards, whatever happened."""
    port = free_local_port()
    with (root / "server.log").open("wb") as log:
        server = subprocess.Popen(
            mlflow_server_command(root, port),
            env=mlflow_server_env(dict(os.environ)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the MLflow server never answered /health")
            time.sleep(0.2)
        yield server, url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
