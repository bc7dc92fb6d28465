"""CPU time used by groups of processes over a wall-clock window, sampled from /proc.

The embedded platform's components each lead their own session (`start_new_session`), and so
does every trainer the worker starts: summing the CPU of the processes in the components'
sessions gives the platform's CPU without the trainer's.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path
from types import TracebackType

_TICK = os.sysconf("SC_CLK_TCK")


def session_cpu_s(sessions: set[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by the live processes of each of `sessions`."""
    used = dict.fromkeys(sessions, 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # After the command name: state ppid pgrp session ... utime(11) stime(12).
        fields = stat.rsplit(")", 1)[1].split()
        session = int(fields[3])
        if session in used:
            used[session] += (int(fields[11]) + int(fields[12])) / _TICK
    return used


class CpuSampler:
    """Samples `session_cpu_s(sessions)` every `period_s` in a thread while in its `with`."""

    def __init__(self, sessions: set[int], period_s: float = 0.25) -> None:
        self._sessions = sessions
        self._period_s = period_s
        self._times: list[float] = []
        self._cpu: list[dict[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._times.append(time.time())
            self._cpu.append(session_cpu_s(self._sessions))
            if self._stop.wait(self._period_s):
                return

    def cores_used(self, start: float, end: float) -> dict[int, float]:
        """Mean number of cores each session used between two `time.time()` instants."""
        return {
            session: (self._at(session, end) - self._at(session, start)) / (end - start)
            for session in self._sessions
        }

    def _at(self, session: int, moment: float) -> float:
        """Cumulative CPU seconds at `moment`, interpolated between the nearest samples."""
        index = bisect.bisect_left(self._times, moment)
        if index <= 0:
            return self._cpu[0][session]
        if index >= len(self._times):
            return self._cpu[-1][session]
        t0, t1 = self._times[index - 1], self._times[index]
        c0, c1 = self._cpu[index - 1][session], self._cpu[index][session]
        return c0 + (c1 - c0) * (moment - t0) / (t1 - t0)
