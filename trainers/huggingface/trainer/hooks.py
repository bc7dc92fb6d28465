"""The `TrainerCallback` that connects the transformers ``Trainer`` to the platform.

With ``logging_strategy``, ``eval_strategy`` and ``save_strategy`` all ``"epoch"``, the Trainer
ends every epoch with ``on_epoch_end`` → ``on_log`` (the epoch's mean training loss and the
learning rate) → ``on_evaluate`` (validation loss, accuracy, macro F1) → checkpoint written →
``on_save``. The callback collects the epoch's metrics along the way and, in ``on_save`` (rank 0
only, after every rank has written its part of the checkpoint), publishes the checkpoint
(trainer/checkpoints.py) and hands the epoch to its `Announce`: in one process, the
``checkpoint_saved`` event and then the epoch's heartbeat; in a distributed run, the hand-over
to the launching process, which sends them (trainer/handover.py) — so a heartbeat for epoch *n*
always has a checkpoint of epoch *n* behind it.

Stopping: after every optimizer step (``on_step_end``) the ranks agree whether any of them must
stop (SIGTERM, a refused callback, a failed upload) and set ``control.should_training_stop``;
``on_epoch_end`` then cancels the evaluation and checkpoint the Trainer would make of the
partial epoch. In a single process, evaluation batches (``on_prediction_step``) are stop points
too.

Throughput (the heartbeats' samples/s and data wait, trainer_kit/system_metrics.py): the Trainer
fetches an optimizer step's batches before ``on_step_begin`` and ends the step with
``on_step_end``, so the time between the previous step's end (or ``on_epoch_begin``) and
``on_step_begin`` is the wait for data. In a distributed run the ranks' reporter sends nothing:
there the heartbeats carry CPU, memory and GPUs only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainer_kit.callbacks import CallbackRefused
from trainer_kit.control import StopFlag
from transformers import TrainerCallback

from trainer.checkpoints import CheckpointKeeper
from trainer.distributed import DistContext
from trainer.progress import ProgressReporter

log = logging.getLogger("trainyard.trainer.hooks")

# What rank 0 does with a published epoch: (completed epoch, its metrics, where its checkpoint is).
Announce = Callable[[int, Mapping[str, float], str], None]

# Trainer metric names → the trainer's metric names.
EVAL_METRICS: Mapping[str, str] = {
    "eval_loss": "val/loss",
    "eval_accuracy": "val/accuracy",
    "eval_f1": "val/f1",
}


class TrainyardCallback(TrainerCallback):  # type: ignore[misc]
    """Heartbeats, checkpoint events and stop checks for one ``Trainer.train`` call."""

    def __init__(
        self,
        reporter: ProgressReporter,
        stop: StopFlag,
        dist: DistContext,
        *,
        keeper: CheckpointKeeper | None,
        announce: Announce,
        train_samples: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reporter = reporter
        self._stop = stop
        self._dist = dist
        self._keeper = keeper  # rank 0 only
        self._announce = announce
        self._train_samples = train_samples
        self._clock = clock
        self._epoch_started_at: float | None = None
        self._pending: dict[str, float] = {}
        self.stopped_early = False

    # -- helpers ----------------------------------------------------------------------------

    def _refused(self, refusal: CallbackRefused, control: Any) -> None:
        log.error("%s; stopping training", refusal)
        self._stop.request_refused(refusal)
        control.should_training_stop = True

    # -- Trainer events ---------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._reporter.training_started()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch_started_at = self._clock()
        self._pending = {}
        self._reporter.throughput.waiting()  # for the epoch's first batches

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._reporter.throughput.data_ready()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # This process's samples of the optimizer step (an epoch's last step may hold fewer).
        samples = args.per_device_train_batch_size * args.gradient_accumulation_steps
        self._reporter.throughput.step_done(samples)
        if self._dist.any(self._stop.stop_requested):
            self.stopped_early = True
            control.should_training_stop = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.stopped_early:
            # A partial epoch: no evaluation, no checkpoint, no heartbeat.
            control.should_evaluate = False
            control.should_save = False
            control.should_log = False
            return
        if self._epoch_started_at is not None:
            seconds = self._clock() - self._epoch_started_at
            if seconds > 0:
                self._pending["train/samples_per_s"] = self._train_samples / seconds

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        logs = logs or {}
        if "loss" in logs and "train_loss" not in logs:
            self._pending["train/loss"] = float(logs["loss"])
            if "learning_rate" in logs:
                self._pending["lr"] = float(logs["learning_rate"])

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> None:
        for name, ours in EVAL_METRICS.items():
            if metrics and name in metrics:
                self._pending[ours] = float(metrics[name])

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._dist.distributed:
            self._stop.check()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._dist.barrier()  # every rank has written its RNG state into the folder
        if self._keeper is None or self.stopped_early:
            return
        completed = round(float(state.epoch or 0))
        staging = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        metrics = dict(self._pending)
        self._keeper.record_epoch(completed, metrics)
        try:
            where = self._keeper.publish(staging)
        except Exception as exc:  # e.g. StorageError: fails the attempt once training stops
            log.error("checkpoint of epoch %d not published: %s; stopping training", completed, exc)
            self._stop.request_failure(exc)
            control.should_training_stop = True
            return
        try:
            self._announce(completed, metrics, where)
        except CallbackRefused as refusal:
            self._refused(refusal, control)
