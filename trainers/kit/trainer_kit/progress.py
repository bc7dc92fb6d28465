"""Heartbeats, events and the keep-alive thread's life cycle: what every trainer's progress
reporter shares.

`HeartbeatReporter` keeps the attempt's progress (completed epochs of the total, the last
epoch's metrics, the ETA) and sends it: `HeartbeatReporter.heartbeat` and
`HeartbeatReporter.event` raise `CallbackRefused` (401/403/409: training must stop) and only log
other delivery failures. `HeartbeatReporter.start` sends the first heartbeat (epoch 0 with no
metrics, or a resumed checkpoint's epoch with that epoch's metrics) and starts a daemon thread
running the subclass's ``_keepalive`` loop, which sends a keep-alive heartbeat (last completed
epoch, no metrics) whenever none went out for ``keepalive_s`` seconds; `HeartbeatReporter.close`
stops it. A reporter without a client (a rank that does not report) sends nothing.

How epochs are recorded and what else the keep-alive thread does (follow worker processes,
publish their checkpoints) is each trainer's own (its trainer/progress.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from trainer_kit.callbacks import CallbackClient, CallbackError, CallbackRefused, clean_metrics
from trainer_kit.control import StopFlag

log = logging.getLogger("trainyard.trainer.progress")


class HeartbeatReporter:
    """Sends heartbeats and events for one attempt; subclasses implement ``_keepalive``."""

    def __init__(
        self,
        client: CallbackClient | None,
        stop: StopFlag,
        *,
        epochs: int,
        keepalive_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._stop = stop
        self._keepalive_s = keepalive_s
        self._clock = clock
        self._started_at = clock()
        self._state_lock = threading.Lock()  # guards the fields below
        self._send_lock = threading.Lock()  # one heartbeat at a time, in order
        self._epochs = epochs
        self._epoch = 0  # completed epochs
        self._start_epoch = 0  # completed before this attempt trained (a resume)
        self._metrics: dict[str, float] = {}
        self._eta_at: tuple[float, float] | None = None  # (clock, eta_s) at the last epoch end
        self._last_beat_at = -math.inf
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        with self._state_lock:
            return self._epoch

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics of the last completed epoch."""
        with self._state_lock:
            return dict(self._metrics)

    def elapsed_s(self) -> float:
        return self._clock() - self._started_at

    def _eta_s(self, now: float) -> float | None:
        if self._eta_at is None:
            return None
        at, eta = self._eta_at
        return max(eta - (now - at), 0.0)

    def _beat_due(self) -> bool:
        """No heartbeat went out for ``keepalive_s`` seconds."""
        with self._state_lock:
            return self._clock() - self._last_beat_at >= self._keepalive_s

    # -- callbacks --------------------------------------------------------------------------

    def heartbeat(self, *, with_metrics: bool) -> None:
        """Send a heartbeat of the current state; raises `CallbackRefused`, logs other failures."""
        if self._client is None:
            return
        with self._send_lock:
            now = self._clock()
            with self._state_lock:
                epoch, epochs = self._epoch, self._epochs
                metrics = dict(self._metrics) if with_metrics else {}
                eta_s = self._eta_s(now)
            try:
                self._client.heartbeat(
                    epoch=epoch,
                    epochs=epochs,
                    metrics=metrics,
                    elapsed_s=now - self._started_at,
                    eta_s=eta_s,
                )
            except CallbackRefused:
                raise
            except CallbackError as exc:
                log.warning("heartbeat not delivered: %s", exc)
            finally:
                with self._state_lock:
                    self._last_beat_at = self._clock()

    def event(self, type_: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        """Send an event; raises `CallbackRefused`, logs other failures."""
        if self._client is None:
            return
        try:
            self._client.event(type_, message, data)
        except CallbackRefused:
            raise
        except CallbackError as exc:
            log.warning("event %s not delivered: %s", type_, exc)

    def checkpoint_restored(self, source: str, epoch: int) -> None:
        """The ``checkpoint_restored`` event: this attempt resumes after ``epoch`` completed
        epochs from the checkpoint at ``source``; raises `CallbackRefused`."""
        self.event(
            "checkpoint_restored",
            f"resuming after epoch {epoch} from {source}",
            {"path": source, "epoch": epoch},
        )

    # -- keep-alive -------------------------------------------------------------------------

    def start(self, *, epoch: int = 0, metrics: Mapping[str, float] | None = None) -> None:
        """Send the first heartbeat now, then keep the attempt alive from a thread.

        ``epoch`` is the number of epochs already completed and ``metrics`` that epoch's: 0 and
        none, or those of the resumed checkpoint (so progress goes on from where the earlier
        attempt stopped).
        """
        with self._state_lock:
            self._epoch = self._start_epoch = epoch
            self._epochs = max(self._epochs, epoch)
            self._metrics = clean_metrics(metrics)
        if self._client is None:
            return
        self.heartbeat(with_metrics=bool(metrics))
        self._thread = threading.Thread(target=self._keepalive, name="keepalive", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 90.0) -> None:
        """Stop the keep-alive thread (waits for a heartbeat in flight)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("keep-alive thread still sending after %.0f s", timeout_s)
            self._thread = None

    def _keepalive(self) -> None:
        """The keep-alive thread's loop (until `close`)."""
        raise NotImplementedError

    def _refused(self, refusal: CallbackRefused) -> None:
        """The keep-alive thread's heartbeat was refused: stop training at the next batch."""
        log.error("%s; stopping training", refusal)
        self._stop.request_refused(refusal)
