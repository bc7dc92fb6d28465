"""The embedded tier's supervisor with small real child processes: a dead child is restarted
with backoff (its whole process group cleared first), stopping gives SIGTERM a grace period
and then SIGKILLs the group, and one platform holds a data folder at a time."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trainyard.cli.data_dir_lock import DataDirBusy, DataDirLock
from trainyard.cli.supervisor import ChildSpec, RestartPolicy, Supervisor
from trainyard.core.supervision import read_state, readiness_section

from .e2e.helpers import pid_exists, wait_until_gone

# Ignores SIGTERM, as does the grandchild it starts (an MLflow CLI and its gunicorn, say);
# writes the grandchild's pid once both are deaf to SIGTERM.
_DEAF_TO_SIGTERM = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
time.sleep(600)
"""


def _until(check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    policy = RestartPolicy(first_delay_s=0.1, max_delay_s=5.0, stable_after_s=0.2)
    supervised = Supervisor(policy, tmp_path / "supervision.json")
    try:
        yield supervised
    finally:
        supervised.stop([], grace_s=0)


def _deaf_child(tmp_path: Path, supervisor: Supervisor) -> int:
    """Start the SIGTERM-deaf child; its grandchild's pid."""
    marker = tmp_path / "grandchild.pid"
    command = [sys.executable, "-c", _DEAF_TO_SIGTERM, str(marker)]
    supervisor.spawn(ChildSpec("deaf", command, dict(os.environ), tmp_path / "deaf.log"))
    _until(lambda: marker.exists() and marker.read_text() != "")
    return int(marker.read_text())


def test_a_child_deaf_to_sigterm_gets_its_grace_then_its_whole_group_is_killed(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    grandchild = _deaf_child(tmp_path, supervisor)
    child = supervisor.pids["deaf"]

    started = time.monotonic()
    supervisor.stop([["deaf"]], grace_s=1.0)
    took = time.monotonic() - started

    assert 1.0 <= took < 10
    assert not pid_exists(child)
    assert wait_until_gone(grandchild, timeout_s=5)
    state = read_state(tmp_path / "supervision.json")
    assert not isinstance(state, str)
    assert state.components["deaf"].state == "stopped"


def test_a_child_that_stops_on_sigterm_is_not_kept_waiting_for_the_grace(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(600)"]
    supervisor.spawn(ChildSpec("polite", command, dict(os.environ), tmp_path / "polite.log"))

    started = time.monotonic()
    supervisor.stop([["polite"]], grace_s=30)

    assert time.monotonic() - started < 10


def test_a_killed_child_is_restarted_after_its_group_is_cleared_and_the_state_says_so(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    grandchild = _deaf_child(tmp_path, supervisor)
    first = supervisor.pids["deaf"]
    supervisor.watch(every_s=0.05)

    os.kill(first, signal.SIGKILL)

    _until(lambda: supervisor.pids.get("deaf", first) != first)
    # The grandchild would have kept whatever port the restarted child needs.
    assert wait_until_gone(grandchild, timeout_s=5)
    state = read_state(tmp_path / "supervision.json")
    assert not isinstance(state, str)
    deaf = state.components["deaf"]
    assert (deaf.state, deaf.restarts, deaf.last_exit) == ("running", 1, "killed by SIGKILL")
    assert deaf.pid == supervisor.pids["deaf"]
    section = readiness_section(tmp_path / "supervision.json")
    assert section["supervision"] == {
        "deaf": {
            "state": "running",
            "restarts": 1,
            "last_exit": "killed by SIGKILL",
            "last_restart_at": deaf.last_restart_at,
        }
    }


def _start_times(log: Path) -> list[float]:
    return [float(line) for line in log.read_text().split()]


def _crashing_child(tmp_path: Path, supervisor: Supervisor, lives_s: float) -> Path:
    log = tmp_path / "crash.log"
    script = f"date +%s.%N; sleep {lives_s}; exit 3"
    supervisor.spawn(ChildSpec("crash", ["sh", "-c", script], dict(os.environ), log))
    supervisor.watch(every_s=0.02)
    return log


def test_restarts_of_a_crashing_child_back_off_up_to_the_bound() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=30, stable_after_s=60)

    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_crash_loop_waits_longer_and_longer_between_starts(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    log = _crashing_child(tmp_path, supervisor, lives_s=0)

    _until(lambda: len(_start_times(log)) >= 5)

    gaps = [b - a for a, b in itertools.pairwise(_start_times(log))]
    assert [gap >= delay for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=False)] == [
        True
    ] * 4
    state = read_state(tmp_path / "supervision.json")
    assert not isinstance(state, str)
    assert state.components["crash"].last_exit == "exit code 3"


def test_a_child_that_stayed_up_a_while_is_restarted_at_the_first_delay_again(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    # Each run outlives stable_after_s (0.2 s): without the reset the fifth start would come
    # 0.1 + 0.2 + 0.4 + 0.8 s of delays later than it does.
    log = _crashing_child(tmp_path, supervisor, lives_s=0.3)

    _until(lambda: len(_start_times(log)) >= 5)

    gaps = [b - a for a, b in itertools.pairwise(_start_times(log))]
    assert max(gaps) < 1.1, gaps


def test_a_second_holder_of_the_data_folder_is_refused_with_the_first_ones_pid_and_ports(
    tmp_path: Path,
) -> None:
    first = DataDirLock(tmp_path)
    first.acquire({"API": "http://127.0.0.1:8123", "MLflow": "http://127.0.0.1:5123"})
    try:
        with pytest.raises(DataDirBusy) as refused:
            DataDirLock(tmp_path).acquire({"API": "http://127.0.0.1:9000"})
    finally:
        first.release()

    message = str(refused.value)
    assert f"pid {os.getpid()}" in message
    assert "API http://127.0.0.1:8123" in message
    assert "MLflow http://127.0.0.1:5123" in message
    DataDirLock(tmp_path).acquire({})  # released: free again


def test_the_lock_of_a_holder_killed_outright_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from trainyard.cli.data_dir_lock import DataDirLock\n"
            "lock = DataDirLock(Path(sys.argv[1]))\n"
            "lock.acquire({'API': 'x'})\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(DataDirBusy):
        DataDirLock(tmp_path).acquire({})

    holder.kill()
    holder.wait()

    DataDirLock(tmp_path).acquire({})  # no stale claim left behind
    assert json.loads((tmp_path / "up.lock").read_text())["pid"] == os.getpid()
