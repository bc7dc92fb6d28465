"""Progress reporting: heartbeats, events and the keep-alive thread.

* `ProgressReporter.start` sends the first heartbeat (epoch 0 with no metrics, or a resumed
  checkpoint's epoch with that epoch's metrics) and starts a daemon thread that sends a
  keep-alive heartbeat (last completed epoch, no metrics) whenever none went out for
  ``keepalive_s`` seconds — through set-up, long epochs, evaluation and uploads.
* `ProgressReporter.epoch_done` records a completed epoch and sends its heartbeat (called by the
  Trainer callback, trainer/hooks.py, once the epoch's checkpoint is published).
* A reporter without a client (the other ranks of a distributed run) sends nothing.

A heartbeat refused with 401/403/409 by the keep-alive thread is recorded on the `StopFlag`,
which stops training at the next batch boundary.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from trainer.callbacks import CallbackClient, CallbackError, CallbackRefused, clean_metrics
from trainer.control import StopFlag

log = logging.getLogger("trainyard.trainer.progress")


class ProgressReporter:
    """Sends heartbeats and events for one training run."""

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
        self._metrics: dict[str, float] = {}
        self._train_started_at: float | None = None
        self._start_epoch = 0
        self._eta_at: tuple[float, float] | None = None  # (clock, eta_s) at the last epoch end
        self._last_beat_at = -math.inf
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._client is not None

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

    def training_started(self) -> None:
        """The Trainer's loop begins (after set-up): the ETA counts from here."""
        with self._state_lock:
            self._train_started_at = self._clock()
            self._start_epoch = self._epoch

    def _record_epoch(self, completed: int, metrics: Mapping[str, float]) -> None:
        now = self._clock()
        with self._state_lock:
            self._epoch = max(self._epoch, completed)
            self._epochs = max(self._epochs, self._epoch)
            self._metrics = clean_metrics(metrics)
            started = self._train_started_at if self._train_started_at is not None else now
            done_here = self._epoch - self._start_epoch
            if done_here > 0 and now > started:
                per_epoch = (now - started) / done_here
                self._eta_at = (now, per_epoch * (self._epochs - self._epoch))

    def epoch_done(self, completed: int, metrics: Mapping[str, float]) -> None:
        """Record a completed epoch and send its heartbeat; raises `CallbackRefused`."""
        self._record_epoch(completed, metrics)
        self.heartbeat(with_metrics=True)

    # -- heartbeats -------------------------------------------------------------------------

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
        interval = min(self._keepalive_s, 1.0)
        while not self._halt.wait(interval):
            try:
                with self._state_lock:
                    due = self._clock() - self._last_beat_at >= self._keepalive_s
                if due and not self._halt.is_set():
                    self.heartbeat(with_metrics=False)
            except CallbackRefused as refusal:
                log.error("%s; stopping training", refusal)
                self._stop.request_refused(refusal)
                return
            except Exception:  # never let the keep-alive thread die silently
                log.exception("keep-alive failed")
