"""An attempt seen from outside, as the resume tests of every trainer look at it: the callbacks
it made (checkpoint announcements, epochs with metrics), the files it left, and an attempt
SIGKILLed right after it announced a checkpoint (the retry then resumes from it)."""

from __future__ import annotations

import hashlib
import shutil
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_kit.testing.callback_server import Call, serve_callbacks
from trainer_kit.testing.processes import start_trainer


def checkpoint_events(calls: list[Call]) -> list[dict[str, Any]]:
    """The ``data`` of every ``checkpoint_saved`` event, in order."""
    return [
        c.body["data"] for c in calls if c.kind == "event" and c.body["type"] == "checkpoint_saved"
    ]


def metric_epochs(calls: list[Call]) -> list[int]:
    """The epochs of the heartbeats with metrics (one per epoch trained)."""
    return [c.body["epoch"] for c in calls if c.kind == "heartbeat" and c.body["metrics"]]


def file_hashes(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``folder``, by relative path."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def results_rows(path: Path) -> list[list[str]]:
    """The rows of a ``results.csv`` (its header left out), as text."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(",") for line in lines[1:]]


def kill_at_checkpoint(
    make_env: Callable[[str], Mapping[str, str]], cwd: Path, *, epoch: int, timeout: float = 120
) -> list[Call]:
    """Run the trainer (``make_env(callback_url)`` is its environment) and SIGKILL it while it
    waits for the answer to its ``checkpoint_saved`` event of ``epoch`` — so that epoch's
    heartbeat never goes out; returns every callback it made."""
    reached, release = threading.Event(), threading.Event()

    def responder(kind: str, body: dict[str, Any]) -> int:
        if body.get("type") == "checkpoint_saved" and body["data"]["epoch"] == epoch:
            reached.set()
            release.wait(60)  # the trainer waits for this answer right after the epoch's save
        return 202

    with serve_callbacks() as server:
        server.responder = responder
        proc = start_trainer(make_env(server.url), cwd)
        try:
            assert reached.wait(timeout), (
                f"the trainer never announced its epoch-{epoch} checkpoint"
            )
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        assert server.wait_for(lambda calls: len(checkpoint_events(calls)) == epoch, timeout=10)
        return server.snapshot()


@dataclass(frozen=True)
class Interrupted:
    """Attempt 1 of a job, killed right after it announced a checkpoint."""

    output_dir: Path
    checkpoint: Path  # the `data.path` of its last checkpoint_saved event (a file or a folder)
    dataset: Path  # where the dataset is now: a new mirror, the old path is gone
    calls: list[Call]
    files: dict[str, str]  # sha256 of every file attempt 1 left, by relative path


def interrupted_attempt(
    root: Path,
    *,
    make_dataset: Callable[[Path], Path],
    make_env: Callable[[str, Path, Path], Mapping[str, str]],
    epoch: int = 2,
    timeout: float = 120,
) -> Interrupted:
    """Attempt 1 (output dir ``root/attempt-1``, dataset ``make_dataset(root/"mirror-1")``,
    environment ``make_env(callback_url, dataset, output_dir)``) SIGKILLed right after it
    announced its checkpoint of ``epoch``; then its dataset mirror is gone and another one is
    made, as the next attempt may get another mirror of the same dataset."""
    first_mirror = make_dataset(root / "mirror-1")
    out = root / "attempt-1"
    calls = kill_at_checkpoint(
        lambda url: make_env(url, first_mirror, out), root, epoch=epoch, timeout=timeout
    )
    checkpoint = checkpoint_events(calls)[-1]["path"]
    shutil.rmtree(first_mirror)
    dataset = make_dataset(root / "mirror-2")
    return Interrupted(out, Path(checkpoint), dataset, calls, file_hashes(out))
