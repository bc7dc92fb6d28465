"""Keeps a set of child processes running: one that dies is restarted with backoff; stopping
sends SIGTERM, waits a grace period, then SIGKILLs what is left.

Each child leads its own process group (`start_new_session`), and the whole group is what is
signalled: an MLflow server is its CLI plus gunicorn's master and worker, and a gunicorn left
behind by a killed CLI would keep the port the restarted one needs. A child is reaped only
after its group was killed: until then its zombie keeps the group id from being reused, so
the signal cannot reach an unrelated process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trainyard.cli.proc_table import processes
from trainyard.core.supervision import (
    ComponentState,
    ComponentStatus,
    SupervisionState,
    write_state,
)

logger = logging.getLogger("trainyard.supervisor")


@dataclass(frozen=True)
class ChildSpec:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path


@dataclass(frozen=True)
class RestartPolicy:
    """Restart delays double from `first_delay_s` up to `max_delay_s` while a child keeps
    crashing; one that stayed up `stable_after_s` starts again from the first delay."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    stable_after_s: float = 60.0

    def delay(self, quick_failures: int) -> float:
        return min(self.first_delay_s * 2.0 ** max(0, quick_failures - 1), self.max_delay_s)


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    state: ComponentState = "running"
    restarts: int = 0
    quick_failures: int = 0
    restart_due: float | None = None
    last_exit: str | None = None
    last_restart_at: str | None = None


def describe_exit(status: int) -> str:
    """'exit code 1' or 'killed by SIGKILL', from a Popen return code."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit code {status}"


def _exit_status(pid: int) -> int | None:
    """The child's return code if it ended (as Popen's), without reaping it; None if running."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return 0  # already reaped
    if info is None:
        return None
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def _group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (zombies, which hold nothing, aside)."""
    return any(fields[0] != "Z" and int(fields[2]) == pgid for _, fields in processes())


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(pgid, sig)


class Supervisor:
    """Starts children, restarts those that die (from a background thread), stops them all."""

    def __init__(self, policy: RestartPolicy, state_path: Path | None = None) -> None:
        self.policy = policy
        self.state_path = state_path
        self._children: dict[str, _Child] = {}
        self._lock = threading.RLock()
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None

    def spawn(self, spec: ChildSpec) -> None:
        with self._lock:
            child = self._children.setdefault(spec.name, _Child(spec))
            self._start(child)
            self._write_state()

    def pid(self, name: str) -> int | None:
        process = self._children[name].process
        return None if process is None else process.pid

    @property
    def pids(self) -> dict[str, int]:
        return {
            name: child.process.pid
            for name, child in self._children.items()
            if child.process is not None
        }

    def exited(self) -> tuple[str, str] | None:
        """The first child found dead and how it ended, without restarting it (start-up)."""
        for name, child in self._children.items():
            if child.process is not None:
                status = _exit_status(child.process.pid)
                if status is not None:
                    return name, describe_exit(status)
        return None

    def check(self) -> None:
        """Notice dead children (their group is killed, a restart scheduled) and restart those
        whose delay has passed."""
        with self._lock:
            now = time.monotonic()
            for child in self._children.values():
                if child.state == "running" and child.process is not None:
                    status = _exit_status(child.process.pid)
                    if status is not None:
                        self._schedule_restart(child, status, now)
                elif child.state == "restarting" and now >= (child.restart_due or now):
                    self._restart(child)

    def _restart(self, child: _Child) -> None:
        child.restarts += 1
        child.last_restart_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._start(child)
        logger.warning(
            "%s restarted (restart %d, pid %s)",
            child.spec.name,
            child.restarts,
            self.pid(child.spec.name),
        )
        self._write_state()

    def watch(self, every_s: float = 0.5) -> None:
        """Check the children every `every_s` in a background thread until `stop`."""
        self._watching.set()

        def loop() -> None:
            while self._watching.is_set():
                try:
                    self.check()
                except Exception:  # a failed restart is tried again on the next round
                    logger.exception("supervision round failed")
                time.sleep(every_s)

        self._thread = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self, batches: Sequence[Sequence[str]], grace_s: float) -> None:
        """Stop the children, batch after batch (names not listed go last): SIGTERM to each
        child's group, `grace_s` for the group to end, then SIGKILL."""
        self._watching.clear()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            listed = [name for batch in batches for name in batch]
            rest = [name for name in reversed(self._children) if name not in listed]
            for batch in [*batches, rest]:
                self._stop_batch([self._children[n] for n in batch if n in self._children], grace_s)
            self._write_state()

    def _stop_batch(self, children: list[_Child], grace_s: float) -> None:
        running = [c for c in children if c.process is not None]
        for child in children:
            child.state = "stopping"
            child.restart_due = None
        self._write_state()
        for child in running:
            assert child.process is not None
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(_group_alive(c.process.pid) for c in running if c.process is not None):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        for child in running:
            assert child.process is not None
            if _group_alive(child.process.pid):
                logger.warning(
                    "%s did not stop within %gs of SIGTERM: killed", child.spec.name, grace_s
                )
                _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
            child.process = None
        for child in children:
            child.state = "stopped"

    def _schedule_restart(self, child: _Child, status: int, now: float) -> None:
        assert child.process is not None
        # Whatever the dead leader left in its group (gunicorn under MLflow's CLI) goes too.
        _signal_group(child.process.pid, signal.SIGKILL)
        child.process.wait()
        lived = now - child.started_at
        if lived >= self.policy.stable_after_s:
            child.quick_failures = 0
        child.quick_failures += 1
        delay = self.policy.delay(child.quick_failures)
        child.last_exit = describe_exit(status)
        child.state = "restarting"
        child.restart_due = now + delay
        logger.warning(
            "%s ended (%s) after %.0fs; restarting in %gs; its log: %s",
            child.spec.name,
            child.last_exit,
            lived,
            delay,
            child.spec.log_path,
        )
        self._write_state()

    def _start(self, child: _Child) -> None:
        spec = child.spec
        with spec.log_path.open("ab") as log:
            child.process = subprocess.Popen(
                spec.command,
                env=spec.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, not them.
            )
        child.started_at = time.monotonic()
        child.state = "running"
        child.restart_due = None

    def _write_state(self) -> None:
        if self.state_path is None:
            return
        components = {
            name: ComponentStatus(
                pid=None if child.process is None else child.process.pid,
                state=child.state,
                restarts=child.restarts,
                last_exit=child.last_exit,
                last_restart_at=child.last_restart_at,
            )
            for name, child in self._children.items()
        }
        write_state(
            self.state_path, SupervisionState(supervisor_pid=os.getpid(), components=components)
        )
