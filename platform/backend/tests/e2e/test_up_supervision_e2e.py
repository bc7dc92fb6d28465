"""`trainyard up` as an operator runs it: a component killed outright is restarted and the
platform works again, a second `up` on the same data folder is refused, and SIGTERM or Ctrl-C
(SIGINT) stop every component and free every port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainyard.cli.embedded import free_local_port
from trainyard.cli.proc_table import processes
from trainyard.core.supervision import STATE_FILE, SupervisionState, read_state
from trainyard.datasets.synthetic_shapes import GeneratedDataset

from .helpers import TERMINAL, pid_exists, submit, trainyard_executable, wait_for

pytestmark = pytest.mark.xdist_group("e2e")

_START_S = 240
# Heartbeat timeout as the other e2e platforms (a CPU epoch of the tiny model fits in it).
_ENV = {"TRAINYARD_HEARTBEAT_TIMEOUT_S": "60", "TRAINYARD_STOP_GRACE_S": "5"}


@dataclass
class Up:
    """A `trainyard up` process, its data folder, ports and output."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    ports: list[int]
    output: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    def state(self) -> SupervisionState:
        state = read_state(self.data_dir / STATE_FILE)
        assert not isinstance(state, str), state
        return state

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def _up_args(data_dir: Path, ports: list[int]) -> list[str]:
    names = ["--api-port", "--temporal-port", "--temporal-ui-port", "--mlflow-port"]
    options = [part for name, port in zip(names, ports, strict=True) for part in (name, str(port))]
    return [trainyard_executable(), "up", "--data-dir", str(data_dir), *options]


# A shell that ignores SIGINT, then becomes the command: what `trainyard up &` gets from a shell.
_SIGINT_IGNORED = ["sh", "-c", 'trap "" INT; exec "$0" "$@"']


def start_up(
    data_dir: Path,
    ports: list[int],
    output: Path,
    datasets_in: Path,
    *,
    as_background_job: bool = False,
) -> Up:
    """`trainyard up` with a short stop grace, once it says it is up. `as_background_job`:
    started with SIGINT ignored, as a shell starts `trainyard up &`."""
    command = [*_up_args(data_dir, ports), "--stop-grace", "5"]
    with output.open("ab") as log:
        process = subprocess.Popen(
            [*_SIGINT_IGNORED, *command] if as_background_job else command,
            env={**os.environ, **_ENV, "TRAINYARD_DATASET_ROOTS": json.dumps([str(datasets_in)])},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    up = Up(process, data_dir, ports, output)
    deadline = time.monotonic() + _START_S
    while "Trainyard is up" not in up.log():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_up(up, signal.SIGTERM)
            pytest.fail(f"trainyard up did not start:\n{up.log()[-3000:]}")
        time.sleep(0.5)
    return up


def stop_up(up: Up, sig: signal.Signals) -> int:
    if up.process.poll() is None:
        up.process.send_signal(sig)
    try:
        return up.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        up.process.kill()
        # A failing test must not leave the components it started running.
        state = read_state(up.data_dir / STATE_FILE)
        for status in [] if isinstance(state, str) else state.components.values():
            if status.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(status.pid, signal.SIGKILL)
        raise


def _group_members(pgids: set[int]) -> set[int]:
    """Every live process in the process groups `pgids` (a component and what it started)."""
    return {pid for pid, fields in processes() if int(fields[2]) in pgids and fields[0] != "Z"}


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _ready(up: Up) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{up.api_url}/readyz", timeout=5)
    except httpx.HTTPError:
        return None
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 else None


def _until(check: Any, what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ports() -> list[int]:
    return [free_local_port() for _ in range(4)]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, ports: list[int]) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("up")
    # Its jobs train on the session's datasets, made in pytest's base temp folder.
    running = start_up(root / "data", ports, root / "up.log", tmp_path_factory.getbasetemp())
    try:
        yield running
    finally:
        stop_up(running, signal.SIGTERM)


def test_a_second_up_on_the_same_data_folder_is_refused_naming_the_running_one(up: Up) -> None:
    other_ports = [free_local_port() for _ in range(4)]

    second = subprocess.run(
        _up_args(up.data_dir, other_ports),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300"},  # the message on one line
        check=False,
    )

    assert second.returncode == 2, second.stdout + second.stderr
    said = " ".join((second.stdout + second.stderr).split())
    assert "already running" in said
    assert f"pid {up.process.pid}" in said
    assert up.api_url in said
    assert up.mlflow_url in said
    assert _ready(up) is not None  # the running one is untouched


@pytest.mark.parametrize("component", ["worker", "temporal", "mlflow", "api"])
def test_a_component_killed_outright_is_restarted_and_readyz_reports_the_restart(
    up: Up, component: str
) -> None:
    killed = up.state().components[component].pid
    assert killed is not None

    os.kill(killed, signal.SIGKILL)

    def restarted() -> bool:
        status = up.state().components[component]
        return status.state == "running" and status.pid not in (None, killed)

    _until(restarted, f"{component} to be restarted")

    def reported() -> dict[str, Any] | None:
        body = _ready(up)
        if body is None or body["supervision"][component]["restarts"] != 1:
            return None
        return body

    body = _until(reported, f"/readyz to report the restart of {component}")
    assert body["supervision"][component]["last_exit"] == "killed by SIGKILL"
    assert f"{component} ended (killed by SIGKILL)" in up.log()
    assert f"{component} restarted (restart 1" in up.log()
    if component == "mlflow":
        _until(lambda: _answers(f"{up.mlflow_url}/health"), "MLflow to answer again")


def test_after_every_restart_a_job_still_trains_to_succeeded_and_is_tracked(
    up: Up, shapes: GeneratedDataset, trainer_python: Path
) -> None:
    with httpx.Client(base_url=up.api_url, timeout=30) as api:
        job = submit(api, shapes.uri, epochs=1)
        final = wait_for(api, job["id"], lambda j: j["state"] in TERMINAL)
        assert final["state"] == "SUCCEEDED", final["reason"]
        tracked = wait_for(
            api, job["id"], lambda j: bool((j.get("tracking") or {}).get("model_version"))
        )
    assert tracked["tracking"]["mlflow_run_id"]


def _stopped_completely(up: Up, sig: signal.Signals) -> None:
    pgids = {status.pid for status in up.state().components.values() if status.pid is not None}
    members = _group_members(pgids)
    assert len(members) >= 4

    code = stop_up(up, sig)

    assert code == 0, up.log()[-3000:]
    assert "stopping" in up.log()
    assert [pid for pid in members if pid_exists(pid)] == []
    assert [port for port in up.ports if not _bindable(port)] == []
    assert {s.state for s in up.state().components.values()} == {"stopped"}


def test_sigterm_stops_everything_then_a_new_up_starts_on_the_same_folder_and_ctrl_c_stops_it(
    up: Up, ports: list[int]
) -> None:
    # One test, not two: a module fixture may be set up again between tests (xdist runs the
    # e2e group's modules interleaved), so "after that" must happen in the same test.
    _stopped_completely(up, signal.SIGTERM)

    # Nothing of the first one is left to hold the data folder or a port. Started as a
    # background job (SIGINT inherited ignored), Ctrl-C must still stop it.
    again = start_up(
        up.data_dir,
        ports,
        up.output.with_name("up-again.log"),
        up.data_dir.parent,
        as_background_job=True,
    )
    try:
        _stopped_completely(again, signal.SIGINT)
    finally:
        stop_up(again, signal.SIGTERM)
