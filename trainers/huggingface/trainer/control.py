"""Stop requests: SIGTERM from the platform, a callback the backend refused, or a failure noticed
outside the training loop.

Neither can stop the transformers ``Trainer`` from the outside, so both only set a flag here. The
trainer's `TrainerCallback` (trainer/hooks.py) looks at it after every optimizer step and sets
``control.should_training_stop`` (agreed on by every rank in a distributed run), so training ends
at the next batch boundary without a partial-epoch checkpoint; `StopFlag.check` then raises after
``Trainer.train`` has returned (and at the stages before it), which unwinds the attempt.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from trainer.callbacks import CallbackRefused


class TrainingCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised after SIGTERM; never escapes `trainer.run`."""


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
        """Called from a helper thread whose failure must fail the attempt."""
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
