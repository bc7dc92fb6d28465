"""Delivers an attempt's heartbeats and events in order from one thread, in bounded memory.

Training never waits on the backend: a slow answer, or a backend restarting while the
`CallbackClient` retries (for as long as the attempt lives), used to hold the training loop (and
the GPU) at every epoch's end. Callbacks keep their order (one thread, one queue) and carry the
values of the moment they were queued. A refusal (401/403/409) is recorded on the `StopFlag`, so
training stops at its next batch boundary; after it nothing more is sent. Other failures are
logged. `Outbox.close` delivers what is queued before the attempt's ``done``.

While the backend is away the queue grows, so what it may lose is explicit (`Keep`):

* ``"always"`` (epoch heartbeats with their metrics, ``checkpoint_saved`` and every other
  event but log lines) is never dropped: one or two per epoch, so the queue stays small
  however long the outage.
* ``"latest"`` (keep-alive heartbeats) coalesces: only the newest pending one is kept, since a
  keep-alive says nothing an older one did not.
* ``"droppable"`` (``log`` events) is dropped while ``capacity`` callbacks are pending; the next
  one accepted (or `Outbox.close`) is preceded by a ``warning`` event with the count.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from trainer_kit.callbacks import CallbackError, CallbackRefused
from trainer_kit.control import StopFlag

log = logging.getLogger("trainyard.trainer.outbox")

Send = Callable[[], None]
Keep = Literal["always", "latest", "droppable"]
# Pending callbacks beyond which log lines are dropped: ~1 KiB each, so about a megabyte.
DEFAULT_CAPACITY = 1000


@dataclass(frozen=True)
class _Item:
    what: str
    send: Send
    keep: Keep


class Outbox:
    """A queue of callbacks and the thread that sends them, started with the first one.

    `dropped_notice(count)` makes the callback that reports ``count`` dropped log events.
    """

    def __init__(
        self,
        stop: StopFlag,
        *,
        capacity: int = DEFAULT_CAPACITY,
        dropped_notice: Callable[[int], Send] | None = None,
    ) -> None:
        self._stop = stop
        self._capacity = capacity
        self._dropped_notice = dropped_notice
        self._changed = threading.Condition()  # guards the fields below
        self._items: deque[_Item] = deque()
        self._sending = False
        self._closing = False
        self._dropped = 0
        self._thread: threading.Thread | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued or being sent."""
        with self._changed:
            return not self._items and not self._sending

    @property
    def pending(self) -> int:
        """Callbacks queued, not counting the one being sent."""
        with self._changed:
            return len(self._items)

    @property
    def dropped(self) -> int:
        """Log events dropped and not yet reported."""
        with self._changed:
            return self._dropped

    def submit(self, what: str, send: Send, keep: Keep = "always") -> None:
        """Queue `send` (`what` names it in the log); returns at once."""
        with self._changed:
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
                self._thread.start()
            if keep == "latest":
                self._items = deque(item for item in self._items if item.keep != "latest")
            elif keep == "droppable":
                if len(self._items) >= self._capacity:
                    if self._dropped == 0:
                        log.warning("%d callbacks pending: dropping log events", len(self._items))
                    self._dropped += 1
                    return
                self._queue_notice()
            self._items.append(_Item(what, send, keep))
            self._changed.notify_all()

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued, then stop the thread. Waits as long as the delivery takes
        (the client retries while the attempt lives) unless `timeout_s` bounds it."""
        with self._changed:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue_notice()
            self._closing = True
            self._changed.notify_all()
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning(
                "%d callback(s) not delivered within %.0f s; going on without them",
                self.pending,
                timeout_s,
            )

    def _queue_notice(self) -> None:
        """Queue the report of the log events dropped so far (the caller holds the lock)."""
        if self._dropped and self._dropped_notice is not None:
            notice = self._dropped_notice(self._dropped)
            self._items.append(_Item("dropped log events", notice, "always"))
        self._dropped = 0

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._items and not self._closing:
                    self._changed.wait()
                if not self._items:
                    return
                item = self._items.popleft()
                self._sending = True
            try:
                if self._stop.refused is None:
                    self._deliver(item.what, item.send)
            finally:
                with self._changed:
                    self._sending = False
                    self._changed.notify_all()

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
