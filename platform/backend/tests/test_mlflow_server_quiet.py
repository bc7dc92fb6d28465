"""The embedded tier's MLflow server (trainyard.cli.embedded_services.mlflow_server_command):
idle, it wakes about once a second, not ten times as under MLflow's default uvicorn, and it
stops at once on SIGTERM although a client keeps a connection open (decisions 010 and 015)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trainyard_testing.mlflow import mlflow_server

_IDLE_S = 3.0


def _tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _wake_ups(root: int) -> int:
    """Voluntary context switches so far of every thread of the server's processes: each is a
    wake-up after a wait."""
    total = 0
    for pid in _tree(root):
        for thread in Path(f"/proc/{pid}/task").iterdir():
            try:
                status = (thread / "status").read_text()
            except OSError:
                continue
            total += next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("vol")
            )
    return total


@pytest.fixture
def quiet_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with mlflow_server(tmp_path) as started:
        yield started


def test_the_mlflow_server_wakes_about_once_a_second_and_stops_at_once(
    quiet_server: tuple[subprocess.Popen[bytes], str],
) -> None:
    server, url = quiet_server
    with httpx.Client(base_url=url) as client:  # keeps its connection open, as MLflow's does
        response = client.get("/api/2.0/mlflow/experiments/search", params={"max_results": 1})
        assert response.status_code == 200
        time.sleep(1)

        before = _wake_ups(server.pid)
        time.sleep(_IDLE_S)
        # Under uvicorn its main loop alone woke 10 times a second (30 here).
        assert _wake_ups(server.pid) - before < 4 * _IDLE_S

        server.terminate()
        # Under gunicorn with keep-alive, its threaded worker waited out its graceful timeout
        # (30 s). uvicorn re-raises the signal once it has stopped.
        assert server.wait(timeout=10) == -signal.SIGTERM
