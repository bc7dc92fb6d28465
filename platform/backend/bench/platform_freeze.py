"""Stops the embedded platform's processes and lets them go on (SIGSTOP / SIGCONT), so that a
bench can compare a trainer's epochs with and without the platform inside one trainer process.

Every component of the embedded tier leads its own session, and so does every trainer the
worker starts (bench/session_cpu.py): stopping the processes of the components' sessions stops
the API, the worker, Temporal and MLflow (their child processes included) and leaves the
trainer running. A stopped process uses no CPU and wakes for nothing; what reaches it meanwhile
(a callback, a timer that fell due) waits in the kernel until it goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import TracebackType

from bench.session_cpu import session_processes


class PlatformFreezer:
    """Stops (`freeze`) and continues (`thaw`) every process of `sessions`; leaving its `with`
    always continues them, so an interrupted bench never leaves the platform stopped."""

    def __init__(self, sessions: set[int]) -> None:
        self._sessions = sessions
        self._stopped: list[int] = []

    @property
    def frozen(self) -> bool:
        return bool(self._stopped)

    def freeze(self) -> None:
        if self.frozen:
            return
        for pid, _, _ in session_processes(self._sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self._stopped.append(pid)

    def thaw(self) -> None:
        stopped, self._stopped = self._stopped, []
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def __enter__(self) -> PlatformFreezer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.thaw()
