"""Progress reporting: heartbeats, the keep-alive thread and checkpoint announcements.

* `ProgressReporter.start` sends the first heartbeat (epoch 0, or the resumed checkpoint's epoch
  with that epoch's metrics) and starts a daemon thread that sends a keep-alive heartbeat (last
  completed epoch, no metrics) whenever none went out for ``keepalive_s`` seconds — through
  set-up, dataset download, long epochs and validation, and the final upload.
* `EpochAnnouncer` is the training loop's epoch sink: it publishes the checkpoint (``best.pt``
  when the epoch is the best so far, then ``last.pt``) through ``publish`` — an atomic upload to
  object storage when the run has an output URI — sends a ``checkpoint_saved`` event with what
  ``publish`` returned (``path``, ``epoch`` and, for a best epoch, ``best``), then the epoch's
  heartbeat with its metrics, ``elapsed_s`` and ``eta_s``.
* With DDP the launching process follows rank 0 through a progress file instead
  (trainer/distributed.py); the keep-alive thread polls it (`ProgressReporter.follow`).

A refused callback (401/403/409) raises `CallbackRefused` out of the training loop, or — in the
keep-alive thread — is recorded on the `StopFlag`, which stops the loop at the next batch.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainer.callbacks import CallbackClient, CallbackError, CallbackRefused
from trainer.control import StopFlag
from trainer.engine import EpochReport

log = logging.getLogger("trainyard.trainer.progress")

POLL_S = 0.2  # how often the keep-alive thread polls a DDP run's progress

# Makes a saved file visible where the platform reads it; returns where it now is.
Publish = Callable[[Path], str]


def local_path(path: Path) -> str:
    """The `Publish` of a run without object storage: the file stays where it is."""
    return str(path)


class ProgressReporter:
    """Sends heartbeats and events for one attempt."""

    def __init__(
        self,
        client: CallbackClient,
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
        self._start_epoch = 0
        self._metrics: dict[str, float] = {}
        self._eta_at: tuple[float, float] | None = None  # (clock, eta_s) at the last epoch end
        self._last_beat_at = -math.inf
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll: Callable[[], None] | None = None

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

    def record_epoch(self, completed: int, metrics: Mapping[str, float]) -> None:
        now = self._clock()
        with self._state_lock:
            self._epoch = max(self._epoch, completed)
            self._metrics = dict(metrics)
            done_here = self._epoch - self._start_epoch
            if done_here > 0 and now > self._started_at:
                per_epoch = (now - self._started_at) / done_here
                self._eta_at = (now, per_epoch * max(self._epochs - self._epoch, 0))

    def _eta_s(self, now: float) -> float | None:
        if self._eta_at is None:
            return None
        at, eta = self._eta_at
        return max(eta - (now - at), 0.0)

    # -- callbacks --------------------------------------------------------------------------

    def heartbeat(self, *, with_metrics: bool) -> None:
        """Send a heartbeat of the current state; raises `CallbackRefused`, logs other failures."""
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
        try:
            self._client.event(type_, message, data)
        except CallbackRefused:
            raise
        except CallbackError as exc:
            log.warning("event %s not delivered: %s", type_, exc)

    # -- keep-alive -------------------------------------------------------------------------

    def start(self, *, epoch: int = 0, metrics: Mapping[str, float] | None = None) -> None:
        """Send the first heartbeat now (``epoch`` completed epochs and their ``metrics``: 0 and
        none, or those of the resumed checkpoint), then keep the attempt alive from a thread."""
        with self._state_lock:
            self._epoch = self._start_epoch = epoch
            self._epochs = max(self._epochs, epoch)
            self._metrics = dict(metrics or {})
        self.heartbeat(with_metrics=bool(metrics))
        self._thread = threading.Thread(target=self._keepalive, name="keepalive", daemon=True)
        self._thread.start()

    def follow(self, poll: Callable[[], None] | None) -> None:
        """Have the keep-alive thread call ``poll`` every `POLL_S` seconds (None: stop)."""
        with self._state_lock:
            self._poll = poll

    def close(self, timeout_s: float = 90.0) -> None:
        """Stop the keep-alive thread (waits for a heartbeat in flight)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("keep-alive thread still sending after %.0f s", timeout_s)
            self._thread = None

    def _interval(self) -> float:
        with self._state_lock:
            return min(self._keepalive_s, 1.0 if self._poll is None else POLL_S)

    def _keepalive(self) -> None:
        while not self._halt.wait(self._interval()):
            try:
                with self._state_lock:
                    poll = self._poll
                    due = self._clock() - self._last_beat_at >= self._keepalive_s
                if poll is not None:
                    poll()
                    with self._state_lock:
                        due = self._clock() - self._last_beat_at >= self._keepalive_s
                if due and not self._halt.is_set():
                    self.heartbeat(with_metrics=False)
            except CallbackRefused as refusal:
                log.error("%s; stopping training", refusal)
                self._stop.request_refused(refusal)
                return
            except Exception as exc:  # a failed upload: the attempt fails
                log.error("stopping training: %s", exc)
                self._stop.request_failure(exc)
                return


class EpochAnnouncer:
    """The epoch sink of the attempt: publish the checkpoint, announce it, send the heartbeat."""

    def __init__(self, reporter: ProgressReporter, publish: Publish = local_path) -> None:
        self._reporter = reporter
        self._publish = publish
        self._lock = threading.Lock()

    def __call__(self, report: EpochReport) -> None:
        with self._lock:
            # best.pt before last.pt (as on disk): the checkpoint a retry resumes from is then
            # never newer than the best.pt beside it.
            best = self._publish(report.best) if report.best is not None else None
            data: dict[str, Any] = {"path": self._publish(report.last), "epoch": report.epoch}
            if best is not None:
                data["best"] = best
            self._reporter.event("checkpoint_saved", f"epoch {report.epoch} checkpoint", data)
            self._reporter.record_epoch(report.epoch, report.metrics)
            self._reporter.heartbeat(with_metrics=True)
