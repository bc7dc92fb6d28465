"""Embedded tier: each attempt is a local process.

The program is `<trainers_dir>/<framework>/.venv/bin/trainyard-trainer` (built by `make trainers`).

The process runs in its own session (so the whole group, data-loader workers included, can be
signalled at once), with the attempt dir as cwd and `trainer.log` collecting stdout and stderr.
A `trainer.pid` file in the attempt dir (launchers/pid_records.py) lets a restarted worker (or
an activity retry) find a process it did not start itself. A worker that stops (a stop signal,
not a crash) stops the trainers it runs or watches first (`stop_all`): nothing of a local job
outlives the platform, and the job resumes from its newest checkpoint on the next start.

Where the worker runs as root, the trainer runs as an unprivileged user (TRAINYARD_TRAINER_USER,
launchers/trainer_user.py) that owns the attempt dir and cannot read the platform's secrets. The
attempt dir is then the trainer's: the launcher opens nothing there through a link it may have
planted, and trusts a pid file there only for a process of the trainer's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from trainyard_workflows.internal_api import ExternalQueuePlace
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
from trainyard_workflows.launchers.pid_records import (
    NOFOLLOW,
    PidRecord,
    is_alive,
    process_uid,
    read_pid_file,
    start_ticks,
    write_pid_file,
)
from trainyard_workflows.launchers.trainer_user import (
    TrainerUser,
    prepare_attempt_dir,
    reachability_problem,
)

logger = logging.getLogger(__name__)

LOG_FILE = "trainer.log"
# Variables a program needs to behave normally; everything else of the worker's environment,
# TRAINYARD_INTERNAL_TOKEN above all, stays out of the trainer.
_INHERITED_ENV = ("PATH", "HOME", "LANG")
_FRAMEWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_POLL_S = 0.05
# Starts the line the launcher writes into trainer.log before each (re)launch.
_MARKER = "--- trainyard:"
# After SIGKILL the kernel needs a moment; past this the process is stuck in the kernel (D state).
_KILL_WAIT_S = 10.0


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _is_own_file(fd: int) -> bool:
    """A regular file with no other name: not a link a trainer made to a file elsewhere."""
    info = os.fstat(fd)
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _open_log_for_append(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW
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
        with os.fdopen(os.open(path, os.O_RDONLY | NOFOLLOW), "rb") as log:
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
        # Attempts this worker launched or watches (adopted after a restart) that still ran
        # when last looked at: what `stop_all` stops when the worker stops.
        self._attempts: dict[tuple[str, int], AttemptHandle] = {}
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
            handle = await self._launch(traced)
        self._attempts[(handle.job_id, handle.attempt)] = handle
        return handle

    async def _launch(self, request: LaunchRequest) -> AttemptHandle:
        output_dir = Path(request.output_dir)
        async with self._launch_lock:
            record = read_pid_file(output_dir)
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
            record = PidRecord(
                pid=process.pid, launched_at=launched_at, start_ticks=start_ticks(process.pid)
            )
            write_pid_file(output_dir, record)
            self._children[(request.job_id, request.attempt)] = process
            logger.info(
                "launched attempt %s of %s as pid %s", request.attempt, request.job_id, process.pid
            )
            return self._handle(request.job_id, request.attempt, output_dir, record)

    async def status(self, handle: AttemptHandle) -> AttemptStatus:
        status = await self._status(handle)
        key = (handle.job_id, handle.attempt)
        if status.running:
            self._attempts[key] = handle
        elif self._attempts.get(key) == handle:
            del self._attempts[key]
        return status

    async def _status(self, handle: AttemptHandle) -> AttemptStatus:
        child = self._children.get((handle.job_id, handle.attempt))
        if child is not None and child.pid == handle.pid:
            code = child.poll()
            return AttemptStatus(running=code is None, exit_code=code)
        record = read_pid_file(Path(handle.output_dir))
        if record is None or record.pid != handle.pid:
            record = PidRecord(pid=handle.pid, launched_at=handle.launched_at, start_ticks=None)
        return AttemptStatus(running=is_alive(record))

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

    async def stop_all(self, grace_s: float) -> list[AttemptHandle]:
        """Stop every attempt this worker launched or watched that still runs, all at once
        (SIGTERM, `grace_s`, then SIGKILL); the attempts that were running.

        For a worker that stops: a trainer left behind would hold the machine's GPUs with
        nobody watching it. SIGTERM lets it report `done(cancelled)`, which its workflow takes
        for an interruption once a worker runs again: the next attempt resumes from the newest
        checkpoint. A worker that crashes or is killed runs none of this: its trainers go on,
        and the restarted worker adopts them through their pid files.
        """
        running = [h for h in list(self._attempts.values()) if (await self.status(h)).running]
        await asyncio.gather(*(self.stop(handle, grace_s) for handle in running))
        return running

    async def log_tail(self, handle: AttemptHandle, lines: int) -> list[str]:
        return await asyncio.to_thread(_read_tail, Path(handle.log_path), lines)

    async def pending_reasons(self, handle: AttemptHandle) -> list[PendingReason]:
        return []  # a local process runs from the moment it is launched

    async def disruptions(self, handle: AttemptHandle) -> list[PendingReason]:
        return []  # nothing preempts a local process

    async def queued_in(self, handle: AttemptHandle) -> ExternalQueuePlace | None:
        return None  # the platform's own ledger admitted it before launch

    async def launched_objects(self) -> list[LaunchedObject]:
        # A trainer process of an ended job is stopped by its workflow's cleanup; nothing of a
        # local attempt outlives that (no GPU held elsewhere), so there is nothing to reclaim.
        return []

    async def delete_launched(self, launched: LaunchedObject) -> bool:
        return False

    async def aclose(self) -> None:
        """Nothing to release: a stopping worker stops its trainers with `stop_all` first."""

    async def _wait_exit(self, handle: AttemptHandle, timeout_s: float) -> AttemptStatus:
        deadline = time.monotonic() + timeout_s
        status = await self.status(handle)
        while status.running and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
            status = await self.status(handle)
        return status

    def _record_running(self, job_id: str, attempt: int, record: PidRecord) -> bool:
        child = self._children.get((job_id, attempt))
        if child is not None and child.pid == record.pid:
            return child.poll() is None
        if self._trainer_user is not None and process_uid(record.pid) != self._trainer_user.uid:
            # The trainer owns the folder and so the pid file: one naming a process of another
            # user (the API's, the worker's) is not its trainer, and must never be signalled.
            return False
        return is_alive(record)

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
    def _handle(job_id: str, attempt: int, output_dir: Path, record: PidRecord) -> AttemptHandle:
        return AttemptHandle(
            job_id=job_id,
            attempt=attempt,
            pid=record.pid,
            output_dir=str(output_dir),
            log_path=str(output_dir / LOG_FILE),
            launched_at=record.launched_at,
        )
