"""The subprocess launcher against real processes: a fake trainer program per test."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from trainyard_workflows.launchers import (
    AttemptHandle,
    LaunchRequest,
    TrainerNotInstalledError,
)
from trainyard_workflows.launchers.base import TRAINER_ENV_VARS
from trainyard_workflows.launchers.subprocess_launcher import LOG_FILE, SubprocessLauncher

# A stand-in trainer. Its behaviour comes from TRAINYARD_MODEL, a contract variable (the
# launcher passes no others), and it prints what it saw.
FAKE_TRAINER = """\
#!{python}
import json, os, signal, subprocess, sys, time

mode = os.environ.get("TRAINYARD_MODEL", "")
print("env " + json.dumps(sorted(os.environ)), flush=True)
print("cwd " + os.getcwd(), flush=True)
if mode == "exit":
    for number in range(30):
        print(f"line {{number}}", flush=True)
    print("boom", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "progress":
    print("epoch 1/2: 10%\\repoch 1/2: 60%\\repoch 1/2: 100%", flush=True)
    print("done", flush=True)
    sys.exit(0)
if mode == "chatty":
    for number in range(5000):
        print(f"chatter {{number}} " + "x" * 40)
    sys.exit(1)
if mode == "graceful":
    def on_term(*_):
        print("got SIGTERM", flush=True)
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
elif mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif mode == "with-child":
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print(f"child {{child.pid}}", flush=True)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""

Launch = Callable[..., Awaitable[AttemptHandle]]


@pytest.fixture
def trainers_dir(tmp_path: Path) -> Path:
    """A trainers tree with one framework, `fake`, whose trainer is FAKE_TRAINER."""
    executable = tmp_path / "trainers" / "fake" / ".venv" / "bin" / "trainyard-trainer"
    executable.parent.mkdir(parents=True)
    executable.write_text(FAKE_TRAINER.format(python=sys.executable))
    executable.chmod(0o755)
    return tmp_path / "trainers"


@pytest.fixture
def launcher(trainers_dir: Path) -> SubprocessLauncher:
    return SubprocessLauncher(trainers_dir)


def request_for(tmp_path: Path, mode: str, attempt: int = 1) -> LaunchRequest:
    output_dir = tmp_path / "data" / "jobs" / "job_ab12" / f"attempt-{attempt}"
    return LaunchRequest(
        job_id="job_ab12",
        attempt=attempt,
        framework="fake",
        output_dir=str(output_dir),
        env={
            "TRAINYARD_JOB_ID": "job_ab12",
            "TRAINYARD_ATTEMPT": str(attempt),
            "TRAINYARD_MODEL": mode,
            "TRAINYARD_OUTPUT_DIR": str(output_dir),
        },
    )


@pytest.fixture
async def launch(launcher: SubprocessLauncher, tmp_path: Path) -> AsyncIterator[Launch]:
    """Launches a fake trainer in `mode` and waits until it is ready; kills all at teardown."""
    handles: list[AttemptHandle] = []

    async def _launch(mode: str, *, attempt: int = 1, wait_for: str = "ready") -> AttemptHandle:
        handle = await launcher.launch(request_for(tmp_path, mode, attempt))
        handles.append(handle)
        await wait_for_log(handle, wait_for)
        return handle

    yield _launch
    for handle in handles:
        await launcher.stop(handle, grace_s=0)


def log_text(handle: AttemptHandle) -> str:
    log = Path(handle.log_path)
    return log.read_text() if log.exists() else ""


async def wait_for_log(handle: AttemptHandle, text: str, timeout_s: float = 15.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = log_text(handle)
        if text in content:
            return content
        await asyncio.sleep(0.02)
    pytest.fail(f"{text!r} never appeared in {handle.log_path}: {log_text(handle)}")


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def wait_for_exit(launcher: SubprocessLauncher, handle: AttemptHandle) -> int | None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = await launcher.status(handle)
        if not status.running:
            return status.exit_code
        await asyncio.sleep(0.02)
    pytest.fail(f"pid {handle.pid} still running")


def process_gone(pid: int) -> bool:
    """Exited (a zombie counts: its parent may be a PID 1 that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def test_launch_runs_the_trainer_in_its_attempt_dir_with_only_the_contract_env(
    launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINYARD_INTERNAL_TOKEN", "worker-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-trainers")

    handle = await launch("sleep")

    log = await wait_for_log(handle, "ready")
    seen = json.loads(log.split("env ", 1)[1].splitlines()[0])
    expected_contract = {"TRAINYARD_JOB_ID", "TRAINYARD_ATTEMPT", "TRAINYARD_MODEL"}
    expected_contract.add("TRAINYARD_OUTPUT_DIR")
    expected_contract.add("TRACEPARENT")  # the launch span's (launchers/launch_span.py)
    inherited = {name for name in ("PATH", "HOME", "LANG") if name in os.environ}
    # The interpreter itself may add LC_CTYPE when coercing a C locale.
    assert set(seen) - {"LC_CTYPE"} == expected_contract | inherited
    output_dir = tmp_path / "data" / "jobs" / "job_ab12" / "attempt-1"
    assert f"cwd {output_dir}\n" in log
    assert handle.output_dir == str(output_dir)
    assert handle.log_path == str(output_dir / LOG_FILE)
    assert handle.launched_at == pytest.approx(time.time(), abs=30)


async def test_the_trainer_leads_its_own_session_and_process_group(launch: Launch) -> None:
    handle = await launch("sleep")

    assert os.getpgid(handle.pid) == handle.pid
    assert os.getsid(handle.pid) == handle.pid
    assert os.getpgid(handle.pid) != os.getpgid(0)


async def test_status_reports_the_exit_code_and_log_tail_the_last_lines(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("exit", wait_for="boom")

    assert await wait_for_exit(launcher, handle) == 3
    assert await launcher.log_tail(handle, 3) == ["line 28", "line 29", "boom"]
    assert len(await launcher.log_tail(handle, 20)) == 20


async def test_log_tail_reads_long_logs_from_the_end(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("chatty", wait_for="chatter 4999")
    await wait_for_exit(launcher, handle)

    tail = await launcher.log_tail(handle, 3)

    assert tail == [f"chatter {number} " + "x" * 40 for number in (4997, 4998, 4999)]


async def test_log_tail_keeps_the_last_drawing_of_a_progress_bar_and_drops_launcher_markers(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("progress", wait_for="done")
    await wait_for_exit(launcher, handle)

    tail = await launcher.log_tail(handle, 20)

    assert tail[-2:] == ["epoch 1/2: 100%", "done"]
    assert not any(line.startswith("--- trainyard") for line in tail)
    assert log_text(handle).startswith("--- trainyard: starting ")


async def test_status_is_running_while_the_trainer_runs(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("sleep")

    status = await launcher.status(handle)

    assert status.running
    assert status.exit_code is None


async def test_stop_sends_sigterm_and_a_graceful_trainer_exits_143(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("graceful")

    started = time.monotonic()
    status = await launcher.stop(handle, grace_s=10)

    assert not status.running
    assert status.exit_code == 143
    assert time.monotonic() - started < 5
    assert "got SIGTERM" in log_text(handle)


async def test_stop_kills_a_trainer_that_ignores_sigterm_once_the_grace_has_passed(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("stubborn")

    started = time.monotonic()
    status = await launcher.stop(handle, grace_s=0.5)

    assert time.monotonic() - started >= 0.5
    assert status.exit_code == -9


async def test_stop_also_kills_the_trainers_children(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("with-child")
    log = await wait_for_log(handle, "ready")
    child_pid = int(log.split("child ", 1)[1].split()[0])
    assert not process_gone(child_pid)

    await launcher.stop(handle, grace_s=0.2)

    assert await eventually(lambda: process_gone(child_pid))


async def test_stopping_an_exited_attempt_only_reports_its_exit(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    handle = await launch("exit", wait_for="boom")
    await wait_for_exit(launcher, handle)

    status = await launcher.stop(handle, grace_s=10)

    assert not status.running
    assert status.exit_code == 3


async def test_launching_a_running_attempt_again_returns_the_same_process(
    launcher: SubprocessLauncher, launch: Launch, tmp_path: Path
) -> None:
    first = await launch("sleep")

    again = await launcher.launch(request_for(tmp_path, "sleep"))

    assert again == first
    assert log_text(first).count("--- trainyard: starting") == 1


async def test_a_restarted_worker_finds_the_running_attempt_through_its_pid_file(
    launch: Launch, trainers_dir: Path, tmp_path: Path
) -> None:
    first = await launch("graceful")
    restarted = SubprocessLauncher(trainers_dir)

    again = await restarted.launch(request_for(tmp_path, "graceful"))
    assert again == first
    assert (await restarted.status(again)).running

    status = await restarted.stop(again, grace_s=10)

    assert not status.running
    assert status.exit_code is None  # not its child: the code went to the original parent
    assert "got SIGTERM" in log_text(first)


async def test_launching_an_attempt_that_exited_starts_it_again(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    first = await launch("exit", wait_for="boom")
    await wait_for_exit(launcher, first)

    second = await launch("sleep")

    assert second.pid != first.pid
    assert (await launcher.status(second)).running
    # Appended, so the first run's output is still there for diagnosis.
    log = log_text(second)
    assert log.count("--- trainyard: starting") == 2
    assert "boom" in log


async def test_attempts_of_one_job_get_their_own_folders(launch: Launch) -> None:
    first = await launch("sleep", attempt=1)
    second = await launch("sleep", attempt=2)

    assert first.pid != second.pid
    assert Path(first.output_dir).name == "attempt-1"
    assert Path(second.output_dir).name == "attempt-2"


async def test_a_missing_trainer_environment_fails_naming_it_and_how_to_install_it(
    launcher: SubprocessLauncher, trainers_dir: Path, tmp_path: Path
) -> None:
    request = request_for(tmp_path, "sleep")
    missing = LaunchRequest(
        job_id=request.job_id,
        attempt=1,
        framework="ultralytics",
        output_dir=request.output_dir,
        env=request.env,
    )

    with pytest.raises(TrainerNotInstalledError) as raised:
        await launcher.launch(missing)

    message = str(raised.value)
    assert str(trainers_dir / "ultralytics" / ".venv" / "bin" / "trainyard-trainer") in message
    assert "make trainers" in message
    assert not await asyncio.to_thread(os.path.exists, request.output_dir)


async def test_launch_refuses_variables_outside_the_trainer_contract(
    launcher: SubprocessLauncher, tmp_path: Path
) -> None:
    request = request_for(tmp_path, "sleep")
    leaky = LaunchRequest(
        job_id=request.job_id,
        attempt=1,
        framework="fake",
        output_dir=request.output_dir,
        env={**request.env, "TRAINYARD_INTERNAL_TOKEN": "worker-secret"},
    )

    with pytest.raises(ValueError, match="TRAINYARD_INTERNAL_TOKEN"):
        await launcher.launch(leaky)


def test_the_contract_variables_match_the_trainer_contract_document() -> None:
    contract = Path(__file__).resolve().parents[2] / "docs" / "trainer-contract.md"
    documented = {
        line.split("`")[1]
        for line in contract.read_text().splitlines()
        if line.startswith("| `TRAINYARD_")
    }

    assert documented == TRAINER_ENV_VARS


async def test_stop_all_stops_every_running_attempt_at_once_and_names_them(
    launcher: SubprocessLauncher, launch: Launch
) -> None:
    graceful = await launch("graceful", attempt=1)
    stubborn = await launch("stubborn", attempt=2)
    exited = await launch("exit", attempt=3, wait_for="boom")
    await wait_for_exit(launcher, exited)

    stopped = await launcher.stop_all(grace_s=1.0)

    assert sorted(h.attempt for h in stopped) == [1, 2]
    assert process_gone(graceful.pid)
    assert process_gone(stubborn.pid)
    assert "got SIGTERM" in log_text(graceful)  # the chance to checkpoint and report
    assert await launcher.stop_all(grace_s=1.0) == []


async def test_stop_all_of_a_restarted_worker_stops_the_attempts_it_watches(
    launch: Launch, trainers_dir: Path
) -> None:
    running = await launch("graceful")
    unaware = SubprocessLauncher(trainers_dir)
    restarted = SubprocessLauncher(trainers_dir)
    assert (await restarted.status(running)).running  # what its watch does after a restart

    assert await unaware.stop_all(grace_s=1.0) == []
    assert not process_gone(running.pid)
    assert await restarted.stop_all(grace_s=5.0) == [running]
    assert process_gone(running.pid)
    assert "got SIGTERM" in log_text(running)
