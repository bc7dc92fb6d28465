"""Stop requests: SIGTERM from the platform, a callback the backend refused, or a failure noticed
outside the training loop (a checkpoint upload from a helper thread).

None of them may interrupt training at an arbitrary point, so each only sets a flag here. The
trainer looks at the flag at batch boundaries (and a few other points) through its framework's
hooks or its own loop: `StopFlag.check` raises there (`CallbackRefused`, the recorded failure or
`TrainingCancelled`), which unwinds the attempt. With several processes the ranks first agree on
whether any of them must stop, so all of them stop at the same batch.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from trainer_kit.callbacks import CallbackRefused


class TrainingCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised after SIGTERM (at a batch boundary); never escapes the trainer's attempt."""


class StopFlag:
    """Thread-safe record of why training must stop, checked at batch boundaries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False  # a plain bool: set from a signal handler, so no locks
        self._refused: CallbackRefused | None = None
        self._failure: Exception | None = None

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled

    @property
    def refused(self) -> CallbackRefused | None:
        return self._refused

    @property
    def failure(self) -> Exception | None:
        return self._failure

    @property
    def stop_requested(self) -> bool:
        return self._cancelled or self._refused is not None or self._failure is not None

    def request_cancel(self) -> None:
        """Called by the SIGTERM handler: stop at the next batch boundary."""
        self._cancelled = True

    def request_refused(self, refusal: CallbackRefused) -> None:
        """Called when a callback is refused (401/403/409), e.g. by the keep-alive thread."""
        with self._lock:
            if self._refused is None:
                self._refused = refusal

    def request_failure(self, failure: Exception) -> None:
        """Called from a helper thread whose failure must fail the attempt (e.g. an upload)."""
        with self._lock:
            if self._failure is None:
                self._failure = failure

    def check(self) -> None:
        """Raise if training must stop: `CallbackRefused` first, then the recorded failure,
        then `TrainingCancelled`."""
        if self._refused is not None:
            raise self._refused
        if self._failure is not None:
            raise self._failure
        if self._cancelled:
            raise TrainingCancelled("stopped by SIGTERM")


def install_sigterm_handler(flag: StopFlag) -> None:
    """Make SIGTERM set `flag` instead of killing the process (main thread only)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.request_cancel()

    signal.signal(signal.SIGTERM, handler)
