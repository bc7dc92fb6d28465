"""Delivers an attempt's heartbeats and events in order from one thread.

Training never waits on the backend: a slow answer, or a backend restarting while the
`CallbackClient` retries for up to a minute, used to hold the training loop (and the GPU) at
every epoch's end. Callbacks keep their order (one thread, one queue) and carry the values of
the moment they were queued. A refusal (401/403/409) is recorded on the `StopFlag`, so training
stops at its next batch boundary; after it nothing more is sent. Other failures are logged, as
they were before. `Outbox.close` delivers what is queued before the attempt's ``done``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from trainer_kit.callbacks import CallbackError, CallbackRefused
from trainer_kit.control import StopFlag

log = logging.getLogger("trainyard.trainer.outbox")

Send = Callable[[], None]


class Outbox:
    """A queue of callbacks and the thread that sends them, started with the first one."""

    def __init__(self, stop: StopFlag) -> None:
        self._stop = stop
        self._queue: queue.Queue[tuple[str, Send] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued or being sent."""
        return self._queue.unfinished_tasks == 0

    def submit(self, what: str, send: Send) -> None:
        """Queue `send` (`what` names it in the log); returns at once."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
                self._thread.start()
        self._queue.put((what, send))

    def close(self, timeout_s: float) -> None:
        """Deliver what is queued, waiting up to `timeout_s`, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning(
                "%d callback(s) not delivered within %.0f s; going on without them",
                self._queue.qsize(),
                timeout_s,
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                what, send = item
                if self._stop.refused is None:
                    self._deliver(what, send)
            finally:
                self._queue.task_done()

    def _deliver(self, what: str, send: Send) -> None:
        try:
            send()
        except CallbackRefused as refusal:
            log.error("%s; stopping training", refusal)
            self._stop.request_refused(refusal)
        except CallbackError as exc:
            log.warning("%s not delivered: %s", what, exc)
        except Exception:  # never let the delivery thread die silently
            log.exception("%s not delivered", what)
