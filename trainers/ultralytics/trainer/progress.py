"""Progress reporting: Ultralytics callbacks and the keep-alive thread.

* ``on_fit_epoch_end`` sends a heartbeat with the completed epoch (1-based), the total, every
  numeric metric Ultralytics holds for the epoch (validation metrics and losses from
  ``trainer.metrics``, the mean training losses as ``train/<name>``, learning rates as
  ``lr/pg<i>``), ``elapsed_s`` and ``eta_s``. The extra ``on_fit_epoch_end`` Ultralytics runs
  for its final validation of ``best.pt`` sends nothing: its metrics become the final metrics.
* ``on_model_save`` publishes the checkpoint (``best.pt`` when this epoch is the best so far,
  then ``last.pt``) through ``publish`` — an atomic upload to object storage when the run has an
  output URI — and sends a ``checkpoint_saved`` event carrying what ``publish`` returned (the
  storage URI, or the local path). A failed upload raises out of the hook and fails the run.
* ``on_train_batch_end`` (and a few other hooks) check the `StopFlag`, so SIGTERM or a refused
  callback stops training at the next batch boundary.
* a daemon thread sends a keep-alive heartbeat (last completed epoch, no metrics) whenever no
  heartbeat went out for ``keepalive_s`` seconds — through setup, long epochs and validation.

Multi-GPU runs use DDP: Ultralytics pickles the callbacks into worker processes where they
must not talk to the backend, so a pickled reporter comes back detached (every hook a no-op);
the launching process instead follows the run through ``results.csv`` and ``weights/last.pt``,
which rank 0 writes after every epoch (`ResultsWatcher`); a checkpoint upload failing there is
recorded on the `StopFlag`, which stops the run.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainer_kit.callbacks import CallbackClient, CallbackRefused, clean_metrics
from trainer_kit.control import StopFlag
from trainer_kit.progress import HeartbeatReporter
from trainer_kit.publishing import Publish, local_path
from trainer_kit.system_metrics import SystemSampler

log = logging.getLogger("trainyard.trainer.progress")

Hook = Callable[[Any], None]


def epoch_metrics(trainer: Any) -> dict[str, float]:
    """All numeric metrics of the epoch that just ended, named as in Ultralytics' results.csv."""
    metrics: dict[str, float] = {}
    metrics.update(clean_metrics(getattr(trainer, "metrics", None) or {}))
    tloss = getattr(trainer, "tloss", None)
    if tloss is not None:
        try:
            metrics.update(clean_metrics(trainer.label_loss_items(tloss, prefix="train")))
        except Exception:  # a task trainer with another loss layout: report what we can
            log.debug("could not label training losses", exc_info=True)
    metrics.update(clean_metrics(getattr(trainer, "lr", None) or {}))
    return metrics


class ResultsWatcher:
    """Follows ``results.csv`` and ``weights/last.pt`` of a run written by another process."""

    def __init__(self, run_dir: Path) -> None:
        self.csv_path = run_dir / "results.csv"
        self.last_path = run_dir / "weights" / "last.pt"
        self.best_path = run_dir / "weights" / "best.pt"
        # A last.pt already there (restored for a resume) was not written by this run.
        self._last_mtime: int | None = self._mtime()

    def _mtime(self) -> int | None:
        try:
            return self.last_path.stat().st_mtime_ns
        except OSError:
            return None

    def latest_epoch(self) -> tuple[int, dict[str, float]] | None:
        """The last complete row of results.csv as (completed epoch, metrics), if any."""
        try:
            text = self.csv_path.read_text(encoding="utf-8")
        except OSError:
            return None
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2 or not text.endswith("\n"):  # no row yet, or a row still being written
            return None
        rows = list(csv.reader(lines))
        header = [name.strip() for name in rows[0]]
        row = [value.strip() for value in rows[-1]]
        if len(row) != len(header):
            return None
        values = dict(zip(header, row, strict=True))
        try:
            epoch = int(float(values.pop("epoch")))
        except (KeyError, ValueError):
            return None
        values.pop("time", None)
        return epoch, clean_metrics(values)

    def checkpoint_changed(self) -> bool:
        """True once for every new write of last.pt."""
        mtime = self._mtime()
        if mtime is None:
            return False
        changed = mtime != self._last_mtime
        self._last_mtime = mtime
        return changed


class ProgressReporter(HeartbeatReporter):
    """Sends heartbeats and events for one training run (trainer_kit/progress.py), from
    Ultralytics' callbacks; with DDP its keep-alive thread follows the workers' run folder."""

    def __init__(
        self,
        client: CallbackClient,
        stop: StopFlag,
        *,
        epochs: int,
        keepalive_s: float,
        clock: Callable[[], float] = time.monotonic,
        publish: Publish = local_path,
        system: SystemSampler | None = None,
    ) -> None:
        super().__init__(
            client, stop, epochs=epochs, keepalive_s=keepalive_s, clock=clock, system=system
        )
        self._publish = publish
        self._final_metrics: dict[str, float] | None = None
        self._train_started_at: float | None = None
        self._in_epoch = False
        self._watcher: ResultsWatcher | None = None

    # -- pickling (DDP workers) -------------------------------------------------------------

    def __reduce__(self) -> tuple[Callable[[], ProgressReporter], tuple[()]]:
        return (_detached_reporter, ())

    @classmethod
    def _detached(cls) -> ProgressReporter:
        reporter = cls.__new__(cls)
        reporter._client = None
        return reporter

    @property
    def _active(self) -> bool:
        return self._client is not None

    # -- state ------------------------------------------------------------------------------

    @property
    def final_metrics(self) -> dict[str, float]:
        """The last epoch's metrics, updated with Ultralytics' final validation of best.pt."""
        with self._state_lock:
            return {**self._metrics, **(self._final_metrics or {})}

    def _record_epoch(self, completed: int, epochs: int, metrics: dict[str, float]) -> None:
        now = self._clock()
        with self._state_lock:
            self._epoch = max(self._epoch, completed)
            self._epochs = max(epochs, self._epoch)
            self._metrics = metrics
            started = self._train_started_at if self._train_started_at is not None else now
            done_here = self._epoch - self._start_epoch
            if done_here > 0 and now > started:
                per_epoch = (now - started) / done_here
                self._eta_at = (now, per_epoch * (self._epochs - self._epoch))

    # -- keep-alive -------------------------------------------------------------------------

    def start(
        self,
        *,
        watch_run_dir: Path | None = None,
        epoch: int = 0,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Send the first heartbeat now, then keep the attempt alive from a thread.

        ``epoch`` is the number of epochs already completed and ``metrics`` that epoch's: 0 and
        none, or those of the resumed checkpoint (so progress goes on from where the earlier
        attempt stopped). With ``watch_run_dir`` (DDP), the thread also reports epochs and
        checkpoints that worker processes write into that run folder.
        """
        self._watcher = ResultsWatcher(watch_run_dir) if watch_run_dir is not None else None
        super().start(epoch=epoch, metrics=metrics)

    def _keepalive(self) -> None:
        interval = self._keepalive_s if self._watcher is None else min(self._keepalive_s, 2.0)
        while not self._halt.wait(interval):
            try:
                if self._watcher is not None:
                    self._poll_watcher(self._watcher)
                if self._beat_due() and not self._halt.is_set():
                    self.heartbeat(with_metrics=False)
            except CallbackRefused as refusal:
                self._refused(refusal)
                return
            except Exception:  # never let the keep-alive thread die silently
                log.exception("keep-alive failed")

    def _poll_watcher(self, watcher: ResultsWatcher) -> None:
        latest = watcher.latest_epoch()
        if latest is not None and latest[0] > self.epoch:
            completed, metrics = latest
            self._record_epoch(completed, self._epochs, metrics)
            self.heartbeat(with_metrics=True)
        if watcher.checkpoint_changed():
            epoch = self.epoch
            try:
                where = self._publish(watcher.last_path)
            except Exception as exc:
                log.error("checkpoint of epoch %d not published: %s; stopping training", epoch, exc)
                self._stop.request_failure(exc)
                return
            self.event(
                "checkpoint_saved", f"epoch {epoch} checkpoint", {"path": where, "epoch": epoch}
            )

    # -- Ultralytics callbacks --------------------------------------------------------------

    def attach(self, model: Any) -> None:
        """Register the callbacks on an ``ultralytics.YOLO`` model."""
        for event, hook in self.hooks().items():
            model.add_callback(event, hook)

    def hooks(self) -> dict[str, Hook]:
        return {
            "on_pretrain_routine_start": self.on_pretrain_routine_start,
            "on_pretrain_routine_end": self.on_pretrain_routine_end,
            "on_train_start": self.on_train_start,
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_batch_start": self.on_train_batch_start,
            "on_train_batch_end": self.on_train_batch_end,
            "on_val_batch_end": self.on_val_batch_end,
            "on_model_save": self.on_model_save,
            "on_fit_epoch_end": self.on_fit_epoch_end,
        }

    def check_stop(self, _: Any = None) -> None:
        """Raise if SIGTERM arrived or a callback was refused (the batch-boundary check)."""
        if self._active:
            self._stop.check()

    on_pretrain_routine_start = check_stop
    on_pretrain_routine_end = check_stop
    on_val_batch_end = check_stop

    # The heartbeats' samples/s and data wait (trainer_kit/system_metrics.py): Ultralytics
    # calls on_train_batch_start once the loader handed the batch over, on_train_batch_end
    # after the step. In a single process only: a DDP worker's hooks are detached.
    def on_train_batch_start(self, _: Any) -> None:
        if self._active:
            self.throughput.data_ready()

    def on_train_batch_end(self, trainer: Any) -> None:
        if self._active:
            # The configured batch: the epoch's last, smaller batch is counted as a full one.
            self.throughput.step_done(int(getattr(trainer, "batch_size", 0) or 0))
        self.check_stop()

    def on_train_start(self, trainer: Any) -> None:
        if not self._active:
            return
        with self._state_lock:
            self._train_started_at = self._clock()
            self._start_epoch = int(getattr(trainer, "start_epoch", 0))
            self._epoch = max(self._epoch, self._start_epoch)
            self._epochs = int(getattr(trainer, "epochs", self._epochs))
        self._stop.check()

    def on_train_epoch_start(self, _: Any) -> None:
        if not self._active:
            return
        self._in_epoch = True
        self.throughput.waiting()  # for the epoch's first batch (validation is not waiting)
        self._stop.check()

    def on_model_save(self, trainer: Any) -> None:
        if not self._active:
            return
        completed = int(trainer.epoch) + 1
        # best.pt before last.pt (as on disk, trainer/atomic_save.py): the checkpoint a retry
        # resumes from is then never newer than the best.pt beside it.
        best = None
        if getattr(trainer, "best_fitness", None) == getattr(trainer, "fitness", object()):
            best = self._publish(Path(trainer.best))
        data: dict[str, Any] = {"path": self._publish(Path(trainer.last)), "epoch": completed}
        if best is not None:
            data["best"] = best
        self.event("checkpoint_saved", f"epoch {completed} checkpoint", data)
        self._stop.check()

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if not self._active:
            return
        metrics = epoch_metrics(trainer)
        if not self._in_epoch:
            # Ultralytics' final validation of best.pt runs this hook once more after the loop.
            with self._state_lock:
                self._final_metrics = clean_metrics(getattr(trainer, "metrics", None) or {})
            self._stop.check()
            return
        self._in_epoch = False
        self._record_epoch(int(trainer.epoch) + 1, int(trainer.epochs), metrics)
        self.heartbeat(with_metrics=True)
        self._stop.check()


def _detached_reporter() -> ProgressReporter:
    return ProgressReporter._detached()
