"""The processes of groups of sessions, the CPU time they used so far and the time their
threads waited for a CPU, read from /proc.

The embedded platform's components each lead their own session (`start_new_session`), and so
does every trainer the worker starts: summing the CPU of the processes in the components'
sessions gives the platform's CPU without the trainer's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from trainyard.cli.proc_table import processes

_TICK = os.sysconf("SC_CLK_TCK")


def session_processes(sessions: set[int]) -> Iterator[tuple[int, int, list[str]]]:
    """(pid, session, /proc stat fields after the command name) of each live process of
    `sessions`."""
    for pid, fields in processes():
        session = int(fields[3])
        if session in sessions:
            yield pid, session, fields


def session_cpu_s(sessions: set[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by the live processes of each of `sessions`."""
    used = dict.fromkeys(sessions, 0.0)
    for _, session, fields in session_processes(sessions):
        used[session] += (int(fields[11]) + int(fields[12])) / _TICK
    return used


def child_sessions(parent: int) -> set[int]:
    """The sessions led by children of `parent` (the trainers the worker started)."""
    return {
        pid for pid, fields in processes() if int(fields[1]) == parent and int(fields[3]) == pid
    }


def session_wait_s(sessions: set[int]) -> float:
    """Seconds the live threads of `sessions` have spent runnable but waiting for a CPU (the
    scheduler's run delay, /proc/<pid>/task/<tid>/schedstat: on-CPU ns, waiting ns, slices)."""
    waited_ns = 0
    for pid, _, _ in session_processes(sessions):
        try:
            threads = os.scandir(f"/proc/{pid}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                waited_ns += int(Path(thread.path, "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return waited_ns / 1e9
