"""The `trainer.pid` file of a local attempt: which process runs it, told apart from an
unrelated process that got the same pid later (its start time), and read and written without
following a link the trainer may have planted in its attempt dir."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "trainer.pid"
# Files in the attempt dir are opened without following a final symlink (the trainer may own
# the folder).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class PidRecord:
    pid: int
    launched_at: float
    # Start time in clock ticks since boot (/proc/<pid>/stat field 22): tells our process
    # apart from an unrelated one that got the same pid after ours ended.
    start_ticks: int | None


def start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def process_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def is_alive(record: PidRecord) -> bool:
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


def read_pid_file(output_dir: Path) -> PidRecord | None:
    try:
        with os.fdopen(os.open(output_dir / PID_FILE, os.O_RDONLY | NOFOLLOW)) as pid_file:
            raw = json.loads(pid_file.read(4096))
        return PidRecord(
            pid=int(raw["pid"]),
            launched_at=float(raw["launched_at"]),
            start_ticks=int(raw["start_ticks"]) if raw.get("start_ticks") is not None else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_pid_file(output_dir: Path, record: PidRecord) -> None:
    payload = {
        "pid": record.pid,
        "launched_at": record.launched_at,
        "start_ticks": record.start_ticks,
    }
    temporary = output_dir / f".{PID_FILE}.tmp"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # whatever is there, a link included: never written through
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
    with os.fdopen(os.open(temporary, flags, 0o644), "w") as pid_file:
        pid_file.write(json.dumps(payload))
    temporary.replace(output_dir / PID_FILE)
