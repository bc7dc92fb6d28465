"""One training attempt: set-up, the epochs (in this process or in DDP workers), ``done``.

Order of events
---------------
1. ``trainer_started`` event (framework, timm/torch versions, model, task, device, world size,
   attempt, pid, and ``resume_from`` when set).
2. ``TRAINYARD_GPUS`` > 0: that many CUDA devices must be visible, else ``done(failed)`` with a
   reason naming ``TRAINYARD_GPUS``.
3. With ``TRAINYARD_RESUME_FROM``: the checkpoint is copied (or downloaded) into this attempt's
   ``run/weights/last.pt`` and checked (trainer/resume.py); a ``checkpoint_restored`` event
   ``{"path", "epoch"}`` follows.
4. The first heartbeat (epoch 0, or the checkpoint's epoch with that epoch's metrics), then
   keep-alives from a thread until the end.
5. The dataset: an ``s3://`` prefix is mirrored into ``<output>/.trainer/dataset/`` first;
   then the image folder is checked (trainer/dataset.py).
6. Training (trainer/engine.py): in this process for 0 or 1 GPU, else in ``TRAINYARD_GPUS``
   torchrun workers (trainer/distributed.py). Per epoch: ``checkpoint_saved``, then the
   heartbeat with the epoch's metrics.
7. With ``TRAINYARD_OUTPUT_URI``: the run folder is uploaded (keep-alives go on meanwhile).
8. ``done``: succeeded (metrics: the final epoch's, plus ``best/epoch`` and ``best/val/top1``),
   failed (``<ExceptionType>: <message>``) or cancelled; artifacts ``weights`` (best.pt),
   ``last`` (last.pt), ``results`` (results.csv) and ``run_dir`` — local paths, or ``s3://``
   URIs of what was uploaded.

Offline: nothing is downloaded (``pretrained=False``; ``HF_HUB_OFFLINE=1``; the Hugging Face
and torch caches point into ``<output>/.trainer/``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Mapping

from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.outcome import collect_artifacts, report_failure, report_success
from trainer_kit.outcome import describe as describe_exception
from trainer_kit.output_dir import FrameworkEnvironment, run_dir
from trainer_kit.publishing import RunPublisher, local_path
from trainer_kit.sources import local_folder
from trainer_kit.storage import LazyStorage
from trainer_kit.system_metrics import SystemSampler

from trainer.dataset import scan_dataset
from trainer.job import TrainJob
from trainer.progress import EpochAnnouncer, ProgressReporter
from trainer.resume import RestoredCheckpoint, restore_checkpoint
from trainer.settings import TrainerSettings

log = logging.getLogger("trainyard.trainer.run")


class GPUUnavailableError(RuntimeError):
    """TRAINYARD_GPUS asks for more CUDA devices than are visible."""


# Set before timm and torch are imported: every library offline, its caches in the output dir
# (trainer_kit/output_dir.py).
ENVIRONMENT = FrameworkEnvironment(
    set={"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"},
    default={"HF_HOME": "{private}/huggingface", "TORCH_HOME": "{private}/torch"},
)


def check_gpus(settings: TrainerSettings) -> None:
    """Raise `GPUUnavailableError` when fewer CUDA devices are visible than requested."""
    if settings.gpus == 0:
        return
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < settings.gpus:
        raise GPUUnavailableError(
            f"TRAINYARD_GPUS={settings.gpus} but {visible} CUDA device(s) are visible"
        )


def restore(settings: TrainerSettings, storage: LazyStorage) -> RestoredCheckpoint | None:
    """Prepare this attempt's resume from ``TRAINYARD_RESUME_FROM``, if set."""
    source = settings.resume_source()
    if source is None:
        return None
    return restore_checkpoint(
        source, run_dir(settings.output_dir), epochs=settings.epochs, storage=storage
    )


# The run's files ``done`` reports (relative to the run folder).
ARTIFACT_FILES: Mapping[str, str] = {
    "weights": "weights/best.pt",
    "last": "weights/last.pt",
    "results": "results.csv",
}


def describe(exc: BaseException) -> str:
    """``<type>: <message>`` on one line, for ``done(failed).reason`` (a DDP worker's failure:
    that worker's own description)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return describe_exception(exc)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return None


def train(
    settings: TrainerSettings,
    reporter: ProgressReporter,
    announcer: EpochAnnouncer,
    stop: StopFlag,
    storage: LazyStorage,
    *,
    restored: RestoredCheckpoint | None,
    nproc: int,
) -> dict[str, float]:
    """Fetch and check the dataset, then run the epochs; returns the final metrics."""
    private = ENVIRONMENT.prepare(settings.output_dir)
    dataset = local_folder(settings.dataset_uri, private / "dataset", storage, stop)
    scan_dataset(dataset)  # fail fast, before any worker starts
    stop.check()
    job = TrainJob(
        model=settings.model,
        dataset=dataset,
        run_dir=run_dir(settings.output_dir),
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        batch=settings.batch,
        cuda=settings.gpus > 0,
        hyperparameters=settings.hyperparameters,
        resume=restored.path if restored is not None else None,
        best_known=restored.best_known if restored is not None else True,
    )
    log.info("training %s for %d epochs in %d process(es)", settings.model, job.epochs, nproc)
    if nproc > 1:
        from trainer.distributed import run_distributed

        return run_distributed(
            job, nproc, private=private, reporter=reporter, sink=announcer, stop=stop
        )
    import torch

    from trainer.engine import train as train_job
    from trainer.ranks import Distributed

    device = torch.device("cuda", 0) if job.cuda else torch.device("cpu")
    if job.cuda:
        torch.cuda.set_device(device)
    # The reporter's meter: its heartbeats carry this loop's samples/s and data wait.
    return train_job(job, announcer, stop, Distributed(device), meter=reporter.throughput)


def run_attempt(
    settings: TrainerSettings,
    client: CallbackClient,
    stop: StopFlag,
    *,
    nproc: int | None = None,
) -> int:
    """Train once and report the outcome; returns the process exit code.

    ``nproc`` is the number of training processes: by default one per GPU (at least one). More
    than one trains with DDP — on CUDA when ``TRAINYARD_GPUS`` > 0, else on CPU with gloo.
    """
    processes = nproc if nproc is not None else max(1, settings.gpus)
    storage = LazyStorage()
    publisher: RunPublisher | None = None
    if settings.output_uri is not None:
        ENVIRONMENT.prepare(settings.output_dir)  # the publisher's scratch space lives there
        publisher = RunPublisher(storage, settings.output_uri, settings.output_dir)
    reporter = ProgressReporter(
        client,
        stop,
        epochs=settings.epochs,
        keepalive_s=settings.keepalive_s,
        system=SystemSampler(gpus=settings.gpus),  # its own GPUs only, none on a CPU run
    )
    announcer = EpochAnnouncer(reporter, publisher.publish if publisher is not None else local_path)
    folder = run_dir(settings.output_dir)
    metrics: dict[str, float] = {}
    try:
        try:
            reporter.event(
                "trainer_started",
                f"timm trainer started (attempt {settings.attempt})",
                {
                    "framework": "timm",
                    "timm_version": _version("timm"),
                    "torch_version": _version("torch"),
                    "model": settings.model,
                    "task": settings.task,
                    "device": settings.device_name(),
                    "world_size": processes,
                    "attempt": settings.attempt,
                    "pid": os.getpid(),
                    **({"resume_from": settings.resume_from} if settings.resume_from else {}),
                },
            )
            check_gpus(settings)
            stop.check()
            restored = restore(settings, storage)
            if restored is not None:
                reporter.checkpoint_restored(restored.source, restored.completed_epochs)
            stop.check()
            reporter.start(
                epoch=0 if restored is None else restored.completed_epochs,
                metrics=None if restored is None else restored.metrics,
            )
            metrics = train(
                settings,
                reporter,
                announcer,
                stop,
                storage,
                restored=restored,
                nproc=processes,
            )
            if publisher is not None:  # keep-alives go on while the run is uploaded
                publisher.publish_files(folder)
            stop.check()
        finally:
            reporter.close()
    except BaseException as exc:
        return report_failure(
            client,
            exc,
            stop,
            metrics=reporter.metrics,
            artifacts=lambda: collect_artifacts(folder, ARTIFACT_FILES, publisher),
            describe=describe,
        )
    return report_success(
        client, metrics=metrics, artifacts=collect_artifacts(folder, ARTIFACT_FILES, publisher)
    )
