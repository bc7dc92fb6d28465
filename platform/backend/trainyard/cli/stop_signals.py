"""How `trainyard up` and `trainyard demo` take the signals that stop them.

SIGTERM (what systemd, Docker and Kubernetes send) ends the platform's `with` block as Ctrl-C
does, by raising KeyboardInterrupt, so both stop every component and wait for it. SIGINT gets
the same handler explicitly: a process started as a shell's background job inherits SIGINT
ignored, and Python then leaves it ignored. While the
platform stops, further signals are noted and otherwise ignored: one interrupting the stop
would leave components running. The handlers are Python functions, not SIG_IGN, because a
process started meanwhile would inherit SIG_IGN and then ignore the SIGTERM that stops it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger("trainyard.supervisor")

_STOPS = (signal.SIGINT, signal.SIGTERM)


def _in_main_thread() -> bool:
    # Python lets only the main thread install signal handlers.
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise KeyboardInterrupt."""
    if not _in_main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in _STOPS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are logged and otherwise ignored."""
    if not _in_main_thread():
        yield
        return

    def note(signum: int, frame: FrameType | None) -> None:
        logger.warning("%s: already stopping", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, note) for sig in _STOPS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
