"""The live processes as /proc lists them (Linux), for the supervisor and the bench."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the /proc/<pid>/stat fields after the command name) of each live process:
    state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name (field 2) may hold spaces and ')': the fields after the last ')'
        # are fixed.
        yield int(entry.name), stat.rsplit(")", 1)[1].split()
