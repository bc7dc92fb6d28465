"""Embedded tier: each attempt is a local process.

The program is `<trainers_dir>/<framework>/.venv/bin/trainyard-trainer` (built by `make trainers`).

The process runs in its own session (so the whole group, data-loader workers included, can be
signalled at once), with the attempt dir as cwd and `trainer.log` collecting stdout and stderr.
A `trainer.pid` file in the attempt dir lets a restarted worker (or an activity retry) find a
process it did not start itself.

Where the worker runs as root, the trainer runs as an unprivileged user (TRAINYARD_TRAINER_USER,
launchers/trainer_user.py) that owns the attempt dir and cannot read the platform's secrets. The
attempt dir is then the trainer's: the launcher opens nothing there through a link it may have
planted, and trusts a pid file there only for a process of the trainer's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import stat
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
from trainyard_workflows.launchers.launch_span import launch_span
from trainyard_workflows.launchers.trainer_user import (
    TrainerUser,
    prepare_attempt_dir,
    reachability_problem,
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
# Files in the attempt dir are opened without following a final symlink (the trainer may own
# the folder).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


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


def _process_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


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


def _is_own_file(fd: int) -> bool:
    """A regular file with no other name: not a link a trainer made to a file elsewhere."""
    info = os.fstat(fd)
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _open_log_for_append(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:  # a symlink (ELOOP) or a folder: not the log; replaced below
        fd = -1
    if fd >= 0 and _is_own_file(fd):
        return fd
    if fd >= 0:
        os.close(fd)
    logger.warning("%s was not a plain file: replaced", path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    return os.open(path, flags | os.O_EXCL, 0o644)


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
        with os.fdopen(os.open(path, os.O_RDONLY | _NOFOLLOW), "rb") as log:
            if not _is_own_file(log.fileno()):
                logger.warning("not reading %s: not a plain file", path)
                return []
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
    except OSError:  # a link where the log should be (ELOOP): nothing the launcher wrote
        logger.warning("not reading %s: not a regular file", path)
        return []
    return _tail_lines(data)[-lines:]


class SubprocessLauncher:
    """Runs trainers as local processes; see the module docstring."""

    def __init__(self, trainers_dir: Path, trainer_user: TrainerUser | None = None) -> None:
        """`trainer_user`: the user trainers run as (None: the worker's own)."""
        self._trainers_dir = trainers_dir
        self._trainer_user = trainer_user
        # Frameworks already warned about running as the platform user.
        self._warned: set[str] = set()
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
        with launch_span(request, "subprocess") as traced:
            return await self._launch(traced)

    async def _launch(self, request: LaunchRequest) -> AttemptHandle:
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
            run_as = self._run_as(request.framework, executable, output_dir)
            env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
            env.update(request.env)
            launched_at = time.time()
            process = await asyncio.to_thread(
                self._spawn, executable, output_dir, env, launched_at, run_as
            )
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
        if self._trainer_user is not None and _process_uid(record.pid) != self._trainer_user.uid:
            # The trainer owns the folder and so the pid file: one naming a process of another
            # user (the API's, the worker's) is not its trainer, and must never be signalled.
            return False
        return _is_alive(record)

    def _run_as(self, framework: str, executable: Path, output_dir: Path) -> TrainerUser | None:
        """The trainer user, if it can run this trainer; the platform user (None) with a
        warning where the default user cannot; raises where a configured one cannot."""
        user = self._trainer_user
        if user is None:
            return None
        output_dir.mkdir(parents=True, exist_ok=True)
        problem = reachability_problem(executable, output_dir, user)
        if problem is None:
            return user
        if user.required:
            raise TrainerNotInstalledError(
                f"TRAINYARD_TRAINER_USER={user.name} cannot run the {framework} trainer: "
                f"{problem}. Install the platform where that user can read it, or set "
                "TRAINYARD_TRAINER_USER to another user (empty: the platform user)."
            )
        if framework not in self._warned:
            self._warned.add(framework)
            logger.warning(
                "%s trainers run as the platform user, who can read the platform's secrets: "
                "user %s cannot run them (%s). Install the platform where it can, or set "
                "TRAINYARD_TRAINER_USER (empty: the platform user, without this warning).",
                framework,
                user.name,
                problem,
            )
        return None

    @staticmethod
    def _spawn(
        executable: Path,
        output_dir: Path,
        env: dict[str, str],
        launched_at: float,
        run_as: TrainerUser | None,
    ) -> subprocess.Popen[bytes]:
        output_dir.mkdir(parents=True, exist_ok=True)
        if run_as is not None:
            env = {**env, **prepare_attempt_dir(output_dir, run_as)}
        with os.fdopen(_open_log_for_append(output_dir / LOG_FILE), "ab") as log:
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
                user=None if run_as is None else run_as.uid,
                group=None if run_as is None else run_as.gid,
                # No supplementary group: root's would stay with the trainer otherwise.
                extra_groups=None if run_as is None else [],
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
            with os.fdopen(os.open(output_dir / PID_FILE, os.O_RDONLY | _NOFOLLOW)) as pid_file:
                raw = json.loads(pid_file.read(4096))
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
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()  # whatever is there, a link included: never written through
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        with os.fdopen(os.open(temporary, flags, 0o644), "w") as pid_file:
            pid_file.write(json.dumps(payload))
        temporary.replace(output_dir / PID_FILE)
