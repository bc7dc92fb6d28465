"""Progress reporting: heartbeats, events and the keep-alive thread.

* `ProgressReporter.start` sends the first heartbeat (epoch 0 with no metrics, or a resumed
  checkpoint's epoch with that epoch's metrics) and starts a daemon thread that sends a
  keep-alive heartbeat (last completed epoch, no metrics) whenever none went out for
  ``keepalive_s`` seconds — through set-up, long epochs, evaluation and uploads.
* `ProgressReporter.epoch_done` records a completed epoch and sends its heartbeat (called by the
  Trainer callback, trainer/hooks.py, once the epoch's checkpoint is published).
* `ProgressReporter.announce_epoch` sends a published checkpoint's ``checkpoint_saved`` event,
  then the epoch's heartbeat.
* In a distributed run the launching process follows rank 0 through a progress file
  (trainer/handover.py); the keep-alive thread polls it (`ProgressReporter.follow`), and a
  failure there (an upload) stops the run.
* A reporter without a client (the training ranks of a distributed run) sends nothing.

A heartbeat refused with 401/403/409 by the keep-alive thread is recorded on the `StopFlag`,
which stops training at the next batch boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from trainer_kit.callbacks import CallbackRefused, clean_metrics
from trainer_kit.progress import HeartbeatReporter

log = logging.getLogger("trainyard.trainer.progress")

POLL_S = 0.2  # how often the keep-alive thread looks for rank 0's next epoch


class ProgressReporter(HeartbeatReporter):
    """Sends heartbeats and events for one training run (trainer_kit/progress.py); the ETA
    counts from the start of the Trainer's loop."""

    _train_started_at: float | None = None
    _poll: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        return self._client is not None

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

    def announce_epoch(self, completed: int, metrics: Mapping[str, float], where: str) -> None:
        """The ``checkpoint_saved`` event of epoch ``completed`` (its checkpoint at ``where``),
        then the epoch's heartbeat; raises `CallbackRefused`."""
        self.event(
            "checkpoint_saved", f"epoch {completed} checkpoint", {"path": where, "epoch": completed}
        )
        self.epoch_done(completed, metrics)

    def follow(self, poll: Callable[[], None] | None) -> None:
        """Have the keep-alive thread call ``poll`` every `POLL_S` seconds (None: stop)."""
        with self._state_lock:
            self._poll = poll

    def _keepalive(self) -> None:
        while True:
            with self._state_lock:
                poll = self._poll
            if self._halt.wait(min(self._keepalive_s, 1.0 if poll is None else POLL_S)):
                return
            if poll is not None:
                try:
                    poll()
                except CallbackRefused as refusal:
                    self._refused(refusal)
                    return
                except Exception as exc:  # a failed upload: the attempt fails
                    log.error("stopping training: %s", exc)
                    self._stop.request_failure(exc)
                    return
            try:
                if self._beat_due() and not self._halt.is_set():
                    self.heartbeat(with_metrics=False)
            except CallbackRefused as refusal:
                self._refused(refusal)
                return
            except Exception:  # never let the keep-alive thread die silently
                log.exception("keep-alive failed")
