"""Embedded tier: each attempt is a local process.

The program is `<trainers_dir>/<framework>/.venv/bin/trainyard-trainer` (built by `make trainers`).

The process runs in its own session (so the whole group, data-loader workers included, can be
signalled at once), with the attempt dir as cwd and `trainer.log` collecting stdout and stderr.
A `trainer.pid` file in the attempt dir lets a restarted worker (or an activity retry) find a
process it did not start itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from trainyard_workflows.launchers.base import (
    TRAINER_ENV_VARS,
    TRAINER_STORAGE_ENV_VARS,
    AttemptHandle,
    AttemptStatus,
    LaunchedObject,
    LaunchRequest,
    PendingReason,
    TrainerNotInstalledError,
)

logger = logging.getLogger(__name__)

LOG_FILE = "trainer.log"
PID_FILE = "trainer.pid"
# Variables a program needs to behave normally; everything else of the worker's environment,
# TRAINYARD_INTERNAL_TOKEN above all, stays out of the trainer.
_INHERITED_ENV = ("PATH", "HOME", "LANG")
_FRAMEWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_POLL_S = 0.05
# Starts the line the launcher writes into trainer.log before each (re)launch.
_MARKER = "--- trainyard:"
# After SIGKILL the kernel needs a moment; past this the process is stuck in the kernel (D state).
_KILL_WAIT_S = 10.0


@dataclass(frozen=True)
class _PidRecord:
    pid: int
    launched_at: float
    # Start time in clock ticks since boot (/proc/<pid>/stat field 22): tells our process
    # apart from an unrelated one that got the same pid after ours ended.
    start_ticks: int | None


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _is_alive(record: _PidRecord) -> bool:
    """Whether the recorded process still runs (for processes that are not our children)."""
    proc_stat = Path(f"/proc/{record.pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            stat = proc_stat.read_text()
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # zombie or dead: exited, waiting to be reaped
            return False
        return record.start_ticks is None or int(fields[19]) == record.start_ticks
    try:  # no /proc (macOS): existence is all we can check
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _tail_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    # Progress bars redraw a line with "\r": keep only the last drawing of each line. The
    # launcher's own marker lines are not the trainer's output.
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return [line for line in lines if not line.startswith(_MARKER)]


def _read_tail(path: Path, lines: int) -> list[str]:
    if lines <= 0:
        return []
    try:
        with path.open("rb") as log:
            position = log.seek(0, os.SEEK_END)
            data = b""
            # One line more than asked: the first line of a block may be cut.
            while position > 0 and len(_tail_lines(data)) <= lines:
                step = min(8192, position)
                position -= step
                log.seek(position)
                data = log.read(step) + data
    except FileNotFoundError:
        return []
    return _tail_lines(data)[-lines:]


class SubprocessLauncher:
    """Runs trainers as local processes; see the module docstring."""

    def __init__(self, trainers_dir: Path) -> None:
        self._trainers_dir = trainers_dir
        # Our own children, so their exit codes can be collected (and zombies reaped).
        self._children: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self._launch_lock = asyncio.Lock()

    def trainer_executable(self, framework: str) -> Path:
        """The trainer program of `framework`; raises TrainerNotInstalledError if absent."""
        if not _FRAMEWORK.fullmatch(framework):
            raise TrainerNotInstalledError(f"framework name {framework!r} is not a valid name")
        project = self._trainers_dir / framework
        executable = project / ".venv" / "bin" / "trainyard-trainer"
        if not (executable.is_file() and os.access(executable, os.X_OK)):
            raise TrainerNotInstalledError(
                f"trainer environment for framework '{framework}' is missing: {executable} "
                f"does not exist or is not executable. Install the trainers with `make trainers` "
                f"(or `uv sync --locked` in {project})."
            )
        return executable

    async def launch(self, request: LaunchRequest) -> AttemptHandle:
        unexpected = set(request.env) - TRAINER_ENV_VARS - TRAINER_STORAGE_ENV_VARS
        if unexpected:
            raise ValueError(f"not trainer-contract variables: {sorted(unexpected)}")
        output_dir = Path(request.output_dir)
        async with self._launch_lock:
            record = self._read_pid_file(output_dir)
            if record is not None and self._record_running(request.job_id, request.attempt, record):
                logger.info(
                    "attempt %s of %s already running as pid %s",
                    request.attempt,
                    request.job_id,
                    record.pid,
                )
                return self._handle(request.job_id, request.attempt, output_dir, record)

            executable = self.trainer_executable(request.framework)
            env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
            env.update(request.env)
            launched_at = time.time()
            process = await asyncio.to_thread(self._spawn, executable, output_dir, env, launched_at)
            record = _PidRecord(
                pid=process.pid, launched_at=launched_at, start_ticks=_start_ticks(process.pid)
            )
            self._write_pid_file(output_dir, record)
            self._children[(request.job_id, request.attempt)] = process
            logger.info(
                "launched attempt %s of %s as pid %s", request.attempt, request.job_id, process.pid
            )
            return self._handle(request.job_id, request.attempt, output_dir, record)

    async def status(self, handle: AttemptHandle) -> AttemptStatus:
        child = self._children.get((handle.job_id, handle.attempt))
        if child is not None and child.pid == handle.pid:
            code = child.poll()
            return AttemptStatus(running=code is None, exit_code=code)
        record = self._read_pid_file(Path(handle.output_dir))
        if record is None or record.pid != handle.pid:
            record = _PidRecord(pid=handle.pid, launched_at=handle.launched_at, start_ticks=None)
        return AttemptStatus(running=_is_alive(record))

    async def stop(self, handle: AttemptHandle, grace_s: float) -> AttemptStatus:
        status = await self.status(handle)
        if status.running:
            logger.info("stopping pid %s (SIGTERM, %.1fs grace)", handle.pid, grace_s)
            _signal_group(handle.pid, signal.SIGTERM)
            status = await self._wait_exit(handle, grace_s)
            if status.running:
                logger.warning(
                    "pid %s outlived its %.1fs grace, sending SIGKILL", handle.pid, grace_s
                )
                _signal_group(handle.pid, signal.SIGKILL)
                status = await self._wait_exit(handle, _KILL_WAIT_S)
            # Children that ignored SIGTERM or were orphaned by the trainer's exit.
            _signal_group(handle.pid, signal.SIGKILL)
        return status

    async def log_tail(self, handle: AttemptHandle, lines: int) -> list[str]:
        return await asyncio.to_thread(_read_tail, Path(handle.log_path), lines)

    async def pending_reasons(self, handle: AttemptHandle) -> list[PendingReason]:
        return []  # a local process runs from the moment it is launched

    async def disruptions(self, handle: AttemptHandle) -> list[PendingReason]:
        return []  # nothing preempts a local process

    async def launched_objects(self) -> list[LaunchedObject]:
        # A trainer process of an ended job is stopped by its workflow's cleanup; nothing of a
        # local attempt outlives that (no GPU held elsewhere), so there is nothing to reclaim.
        return []

    async def delete_launched(self, launched: LaunchedObject) -> bool:
        return False

    async def aclose(self) -> None:
        """Nothing to release: trainers are processes of their own and outlive the worker."""

    async def _wait_exit(self, handle: AttemptHandle, timeout_s: float) -> AttemptStatus:
        deadline = time.monotonic() + timeout_s
        status = await self.status(handle)
        while status.running and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
            status = await self.status(handle)
        return status

    def _record_running(self, job_id: str, attempt: int, record: _PidRecord) -> bool:
        child = self._children.get((job_id, attempt))
        if child is not None and child.pid == record.pid:
            return child.poll() is None
        return _is_alive(record)

    @staticmethod
    def _spawn(
        executable: Path, output_dir: Path, env: dict[str, str], launched_at: float
    ) -> subprocess.Popen[bytes]:
        output_dir.mkdir(parents=True, exist_ok=True)
        with (output_dir / LOG_FILE).open("ab") as log:
            # Append: a relaunched attempt keeps the earlier run's output above this line.
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(launched_at))
            log.write(f"{_MARKER} starting {executable} at {stamp}\n".encode())
            log.flush()
            return subprocess.Popen(
                [str(executable)],
                cwd=output_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    @staticmethod
    def _handle(job_id: str, attempt: int, output_dir: Path, record: _PidRecord) -> AttemptHandle:
        return AttemptHandle(
            job_id=job_id,
            attempt=attempt,
            pid=record.pid,
            output_dir=str(output_dir),
            log_path=str(output_dir / LOG_FILE),
            launched_at=record.launched_at,
        )

    @staticmethod
    def _read_pid_file(output_dir: Path) -> _PidRecord | None:
        try:
            raw = json.loads((output_dir / PID_FILE).read_text())
            return _PidRecord(
                pid=int(raw["pid"]),
                launched_at=float(raw["launched_at"]),
                start_ticks=int(raw["start_ticks"]) if raw.get("start_ticks") is not None else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _write_pid_file(output_dir: Path, record: _PidRecord) -> None:
        payload = {
            "pid": record.pid,
            "launched_at": record.launched_at,
            "start_ticks": record.start_ticks,
        }
        temporary = output_dir / f".{PID_FILE}.tmp"
        temporary.write_text(json.dumps(payload))
        temporary.replace(output_dir / PID_FILE)
