"""One embedded platform per data folder: `trainyard up` holds an flock on
`<data_dir>/up.lock` for as long as it runs.

A lock, not a pid file: the kernel releases it when its holder ends, however it ends, so a
crashed `up` never leaves a stale claim behind. The file also says who holds it (pid, ports),
so the next `up` can tell the user which one is running.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "up.lock"


class DataDirBusy(RuntimeError):
    """Another platform runs on this data folder; the message says which (pid, ports)."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self, holder: dict[str, object]) -> None:
        """Take the lock and write `holder` (what to tell the next one) into it, or raise
        DataDirBusy naming the platform that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened without truncating: the holder's description stays readable until we own it.
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            described = handle.read()
            handle.close()
            raise DataDirBusy(_busy_message(self.path.parent, described)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), **holder}))
        handle.flush()
        self._file = handle

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the last descriptor releases the flock
            self._file = None


def _busy_message(data_dir: Path, described: str) -> str:
    try:
        holder = json.loads(described)
    except json.JSONDecodeError:
        holder = {}
    details = ", ".join(f"{key} {value}" for key, value in holder.items()) or "details unknown"
    pid = holder.get("pid", "?")
    return (
        f"another Trainyard is already running on {data_dir} ({details}); "
        f"stop it first (Ctrl-C in its terminal, or `kill -TERM {pid}`), "
        "or give this one its own --data-dir and ports"
    )
