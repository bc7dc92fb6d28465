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
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from trainer_kit.callbacks import CallbackClient, CallbackRefused
from trainer_kit.control import StopFlag
from trainer_kit.progress import HeartbeatReporter
from trainer_kit.publishing import Publish, local_path
from trainer_kit.system_metrics import SystemSampler

from trainer.job import EpochReport

log = logging.getLogger("trainyard.trainer.progress")

POLL_S = 0.2  # how often the keep-alive thread polls a DDP run's progress


class ProgressReporter(HeartbeatReporter):
    """Sends heartbeats and events for one attempt (trainer_kit/progress.py); its keep-alive
    thread also polls a DDP run's progress (`follow`)."""

    def __init__(
        self,
        client: CallbackClient,
        stop: StopFlag,
        *,
        epochs: int,
        keepalive_s: float,
        clock: Callable[[], float] = time.monotonic,
        system: SystemSampler | None = None,
    ) -> None:
        super().__init__(
            client, stop, epochs=epochs, keepalive_s=keepalive_s, clock=clock, system=system
        )
        self._poll: Callable[[], None] | None = None

    def record_epoch(self, completed: int, metrics: Mapping[str, float]) -> None:
        now = self._clock()
        with self._state_lock:
            self._epoch = max(self._epoch, completed)
            self._metrics = dict(metrics)
            done_here = self._epoch - self._start_epoch
            if done_here > 0 and now > self._started_at:
                per_epoch = (now - self._started_at) / done_here
                self._eta_at = (now, per_epoch * max(self._epochs - self._epoch, 0))

    def follow(self, poll: Callable[[], None] | None) -> None:
        """Have the keep-alive thread call ``poll`` every `POLL_S` seconds (None: stop)."""
        with self._state_lock:
            self._poll = poll

    def _interval(self) -> float:
        with self._state_lock:
            return min(self._keepalive_s, 1.0 if self._poll is None else POLL_S)

    def _keepalive(self) -> None:
        while not self._halt.wait(self._interval()):
            try:
                with self._state_lock:
                    poll = self._poll
                if poll is not None:
                    poll()
                if self._beat_due() and not self._halt.is_set():
                    self.heartbeat(with_metrics=False)
            except CallbackRefused as refusal:
                self._refused(refusal)
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
