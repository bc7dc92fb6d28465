"""Running the trainer under test (``python -m trainer`` of the suite's own environment) as the
platform does: a process with a clean environment that names the contract's variables."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

TOKEN = "test-token-secret"
JOB_ID = "job_test"
# Secrets a launching process may hold that no training worker may be given.
WORKER_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIA-worker-test",
    "AWS_SECRET_ACCESS_KEY": "s3-secret-worker-test",
    "AWS_SESSION_TOKEN": "session-worker-test",
    "TRAINYARD_INTERNAL_TOKEN": "internal-worker-test",
}


def contract_env(
    server_url: str,
    dataset: Path,
    output_dir: Path,
    home: Path,
    *,
    drop: tuple[str, ...] = (),
) -> dict[str, str]:
    """A clean environment for the trainer process: this one without ``TRAINYARD_*``,
    ``PYTEST_*``, ``AWS_*``, the trace context and ``OTEL_*`` (a test that traces sets its own)
    and the ``drop`` prefixes (the framework's own settings), a private
    HOME, and the contract's variables every trainer reads (two epochs on CPU, keep-alives every
    second); the trainer's suite adds its model, task, image size, batch and hyperparameters."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("TRAINYARD_", "PYTEST_", "AWS_", "OTEL_", "TRACEPARENT", "TRACESTATE", *drop)
        )
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONUNBUFFERED="1",
        TRAINYARD_JOB_ID=JOB_ID,
        TRAINYARD_ATTEMPT="1",
        TRAINYARD_CALLBACK_URL=server_url,
        TRAINYARD_CALLBACK_TOKEN=TOKEN,
        TRAINYARD_DATASET_URI=dataset.resolve().as_uri(),
        TRAINYARD_OUTPUT_DIR=str(output_dir),
        TRAINYARD_EPOCHS="2",
        TRAINYARD_GPUS="0",
        TRAINYARD_KEEPALIVE_S="1",
    )
    return env


def start_trainer(env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``python -m trainer`` in the background, its output (stdout and stderr) in one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "trainer"],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_trainer(
    env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m trainer`` to its end (at most ``timeout`` seconds)."""
    return subprocess.run(
        [sys.executable, "-m", "trainer"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux: /proc/<pid>/task/*/children)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    env = dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )
    env["\0cmdline"] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return env


class SpawnedEnvirons:
    """Records the environment every descendant of process ``root`` (default: this one) was
    started with, as the kernel holds it (/proc/<pid>/environ), while the block runs: what a
    training worker was actually given. ``seen`` maps pid to that environment; the key
    ``"\\0cmdline"`` holds its command line. Read every 10 ms: on a busy machine a worker that
    lives a second must still be seen after its exec."""

    def __init__(self, root: int | None = None, interval_s: float = 0.01) -> None:
        self._root = os.getpid() if root is None else root
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="environ-watch", daemon=True)
        self.seen: dict[int, dict[str, str]] = {}

    def __enter__(self) -> SpawnedEnvirons:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._halt.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._halt.wait(self._interval_s):
            pending = _children(self._root)
            while pending:
                pid = pending.pop()
                pending.extend(_children(pid))
                # Read again each time: a child caught between fork and exec still shows its
                # parent's command line and environment. An exited child not yet reaped (a
                # zombie) reads as empty: that must not overwrite what it ran with.
                if (env := _environ(pid)) is not None and env["\0cmdline"]:
                    self.seen[pid] = env

    def running(self, marker: str) -> list[dict[str, str]]:
        """The environments of the processes whose command line contains ``marker``."""
        return [env for env in self.seen.values() if marker in env["\0cmdline"]]
