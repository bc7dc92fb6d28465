"""The launching process of a distributed run (``TRAINYARD_GPUS`` > 1): the one the platform
started, and the only one that talks to the backend and to object storage.

1. ``trainer_started`` (world size, this process's pid); then ``TRAINYARD_GPUS`` CUDA devices
   must be visible, else ``done(failed)`` naming ``TRAINYARD_GPUS``.
2. The set-up a single process does (trainer/preparation.py): the checkpoint restored
   (``checkpoint_restored``), the first heartbeat and keep-alives from then on, the dataset and
   a saved model downloaded. What it readied is handed to the ranks (trainer/handover.py).
3. torchrun with one rank per GPU, given no secret (trainer/distributed.py). After each epoch
   rank 0 hands the epoch over; this process uploads the checkpoint (with
   ``TRAINYARD_OUTPUT_URI``), sends ``checkpoint_saved`` and the epoch's heartbeat, and only then
   lets rank 0 go on.
4. The final model and ``results.csv`` uploaded, then ``done``: succeeded with rank 0's final
   metrics; failed with the first failing rank's own reason; cancelled after SIGTERM (exit 143),
   which is forwarded to the ranks first. A refused callback or a failed upload stops the ranks
   the same way and ends the attempt as a single process would.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.outcome import describe, report_failure, report_success
from trainer_kit.output_dir import run_dir
from trainer_kit.publishing import RunPublisher
from trainer_kit.storage import LazyStorage
from trainer_kit.system_metrics import SystemSampler

from trainer.artifacts import collect_artifacts
from trainer.checkpoints import CheckpointUploads
from trainer.distributed import WorkerError, run_workers, visible_cuda_devices, worker_result
from trainer.environment import prepare_environment
from trainer.handover import ProgressFollower, ddp_dir, read_outcomes, reset, write_prepared
from trainer.preparation import prepare
from trainer.progress import ProgressReporter
from trainer.run import GPUUnavailableError, publish_run, started_data, started_message
from trainer.settings import TrainerSettings

log = logging.getLogger("trainyard.trainer.launcher")


class EpochAnnouncer:
    """What this process does with each epoch rank 0 hands over: upload its checkpoint, then
    ``checkpoint_saved`` and the epoch's heartbeat."""

    def __init__(self, reporter: ProgressReporter, uploads: CheckpointUploads | None) -> None:
        self._reporter = reporter
        self._uploads = uploads
        self.last: str | None = None  # the newest checkpoint's path or URI

    def __call__(self, epoch: int, metrics: Mapping[str, float], checkpoint: Path) -> None:
        where = self._uploads.upload(checkpoint) if self._uploads is not None else str(checkpoint)
        self.last = where
        self._reporter.announce_epoch(epoch, metrics, where)


def _describe(exc: BaseException) -> str:
    """A rank's failure in that rank's own words."""
    return exc.reason if isinstance(exc, WorkerError) else describe(exc)


def _check_gpus(settings: TrainerSettings) -> None:
    visible = visible_cuda_devices() if settings.gpus > 0 else 0
    if visible < settings.gpus:
        raise GPUUnavailableError(
            f"TRAINYARD_GPUS={settings.gpus} asks for {settings.gpus} GPUs but "
            f"{visible} CUDA device(s) are visible"
        )


def launch(
    settings: TrainerSettings, client: CallbackClient, stop: StopFlag, *, nproc: int | None = None
) -> int:
    """Run the attempt in ``nproc`` ranks (default: one per GPU; more than there are GPUs, or
    with ``TRAINYARD_GPUS=0``, they train on CPU with gloo) and report it; returns the exit
    code."""
    processes = nproc if nproc is not None else settings.gpus
    storage = LazyStorage()
    prepare_environment(settings.output_dir)
    publisher: RunPublisher | None = None
    if settings.output_uri is not None:
        publisher = RunPublisher(storage, settings.output_uri, settings.output_dir)
    reporter = ProgressReporter(
        client,
        stop,
        epochs=settings.epochs,
        keepalive_s=settings.keepalive_s,
        system=SystemSampler(gpus=settings.gpus),  # its own GPUs only, none on a CPU run
    )
    announcer = EpochAnnouncer(reporter, CheckpointUploads(publisher) if publisher else None)
    folder = run_dir(settings.output_dir)
    handover = ddp_dir(settings.output_dir)
    metrics: dict[str, float] = {}
    try:
        try:
            reporter.event(
                "trainer_started",
                started_message(settings),
                started_data(settings, processes, settings.device_name()),
            )
            _check_gpus(settings)
            stop.check()
            prepared = prepare(settings, reporter, stop, storage)
            if prepared.restored is not None:
                announcer.last = prepared.restored.source
            stop.check()
            reset(handover)
            write_prepared(handover, prepared.to_dict())
            follower = ProgressFollower(handover, announcer, announced=reporter.epoch)
            reporter.training_started()
            reporter.follow(follower.poll)
            try:
                returncode = run_workers(processes, stop)
            finally:
                reporter.follow(None)
            log.info("training processes ended with code %s", returncode)
            follower.poll()  # the last epoch, if the keep-alive thread had not seen it yet
            stop.check()  # our own stop (SIGTERM, a refusal, an upload) before the ranks' words
            metrics = worker_result(read_outcomes(handover, processes), returncode, processes)
            if publisher is not None:  # keep-alives go on while the run is uploaded
                publish_run(publisher, folder)
                stop.check()
        finally:
            reporter.close()
    except BaseException as exc:
        return report_failure(
            client,
            exc,
            stop,
            metrics=reporter.metrics,
            artifacts=lambda: collect_artifacts(folder, announcer.last, publisher),
            describe=_describe,
        )
    return report_success(
        client, metrics=metrics, artifacts=collect_artifacts(folder, announcer.last, publisher)
    )
