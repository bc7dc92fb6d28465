"""One training attempt: set-up, the transformers ``Trainer``, and the final ``done``.

The offline set-up is in trainer/environment.py, the Trainer's arguments in
trainer/arguments.py, what rank 0 readies before training in trainer/preparation.py and the
run's layout and artifacts in trainer/artifacts.py.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from trainer_kit.callbacks import CallbackClient, CallbackError
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.outcome import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    describe,
    report_failure,
    send_done,
)
from trainer_kit.output_dir import run_dir, trainer_dir
from trainer_kit.publishing import RunPublisher
from trainer_kit.storage import LazyStorage

from trainer.arguments import training_arguments
from trainer.artifacts import collect_artifacts
from trainer.checkpoints import MARKER, CheckpointKeeper, write_marker
from trainer.dataset import LoadedData, load_data
from trainer.distributed import (
    DistContext,
    LeaderFailed,
    cancel_requested_by_launcher,
    run_workers,
    visible_cuda_devices,
)
from trainer.environment import prepare_environment, transformers_version
from trainer.preparation import Prepared, initial_state, prepare
from trainer.progress import ProgressReporter
from trainer.settings import TEXT_CLASSIFICATION, TrainerSettings

log = logging.getLogger("trainyard.trainer.run")

FRAMEWORK = "huggingface"


class GPUUnavailableError(RuntimeError):
    """TRAINYARD_GPUS asks for more CUDA devices than are visible."""


class PeerStopped(Exception):  # noqa: N818 - a control-flow signal
    """Another rank stopped the run (rank 0 reports why)."""


# -- stages -------------------------------------------------------------------------------------


def train(
    settings: TrainerSettings,
    data: LoadedData,
    prepared: Prepared,
    *,
    reporter: ProgressReporter,
    stop: StopFlag,
    dist: DistContext,
    keeper: CheckpointKeeper | None,
    device: str,
) -> None:
    """Build everything, run ``Trainer.train`` and save the final model into ``run/model/``.
    Raises on failure or when stopped."""
    from trainer_kit.atomic_save import publish_folder
    from transformers import Trainer, set_seed
    from transformers.utils import logging as transformers_logging

    from trainer import modeling
    from trainer.hooks import TrainyardCallback

    hp = settings.hyperparameters
    folder = run_dir(settings.output_dir)
    private = trainer_dir(settings.output_dir)
    transformers_logging.disable_progress_bar()  # one bar per save/load is noise in a log
    set_seed(hp.seed)
    restored = prepared.restored

    def tokenizer_folder() -> Path:
        texts = [text for text, _ in data.train]
        return dist.leader_first(
            lambda: modeling.train_tokenizer(
                texts, hp.vocab_size, hp.max_length, private / "tokenizer"
            ),
            exit_code=lambda: _leader_exit_code(stop),
        )

    built = modeling.build(
        data,
        hp,
        settings.imgsz,
        model_folder=restored.path if restored is not None else prepared.model_folder,
        model_type=prepared.model_type,
        tokenizer_folder=tokenizer_folder if data.task == TEXT_CLASSIFICATION else None,
        restored=restored is not None,
    )
    stop.check()
    callback = TrainyardCallback(reporter, stop, dist, keeper=keeper, train_samples=len(data.train))
    trainer = Trainer(
        model=built.model,
        args=training_arguments(settings, folder, device),
        train_dataset=built.train_dataset,
        eval_dataset=built.eval_dataset,
        data_collator=built.collator,
        processing_class=built.processor,
        compute_metrics=modeling.compute_metrics,
        callbacks=[callback],
    )
    log.info(
        "training %s (%s, %d classes) on %s for %d epochs",
        settings.model,
        data.task,
        len(data.classes),
        device,
        settings.epochs,
    )
    trainer.train(resume_from_checkpoint=str(restored.path) if restored is not None else None)
    stop.check()
    if callback.stopped_early:
        raise PeerStopped("another rank stopped the run")

    staging = folder / ".staging" / "model"
    if dist.is_leader:
        shutil.rmtree(staging, ignore_errors=True)
    dist.barrier()
    trainer.save_model(str(staging))
    dist.barrier()
    if dist.is_leader:
        write_marker(staging)
        publish_folder(staging, folder / "model")


def _leader_exit_code(stop: StopFlag) -> int:
    return EXIT_CANCELLED if stop.cancel_requested else EXIT_FAILED


def _started_data(settings: TrainerSettings, dist: DistContext, device: str) -> dict[str, Any]:
    if dist.distributed and device != "cpu":  # one GPU per rank
        device = "cuda:" + ",".join(str(rank) for rank in range(dist.world_size))
    return {
        "framework": FRAMEWORK,
        "transformers_version": transformers_version(),
        "model": settings.model,
        "task": settings.task or "auto",
        "device": device,
        "world_size": dist.world_size,
        "attempt": settings.attempt,
        "pid": os.getpid(),
        **({"resume_from": settings.resume_from} if settings.resume_from else {}),
    }


def _device(settings: TrainerSettings, dist: DistContext) -> str:
    """Join the process group (distributed) or pick the one device; raises
    `GPUUnavailableError` when TRAINYARD_GPUS=1 and no CUDA device is visible."""
    if dist.distributed:
        return dist.init()
    if settings.gpus == 0:
        return "cpu"
    if visible_cuda_devices() < 1:
        raise GPUUnavailableError(
            f"TRAINYARD_GPUS={settings.gpus} asks for a GPU but no CUDA device is visible"
        )
    return "cuda:0"


def run_attempt(
    settings: TrainerSettings,
    client: CallbackClient | None,
    stop: StopFlag,
    dist: DistContext | None = None,
) -> int:
    """Train once (as one rank of ``dist``) and report the outcome; returns the exit code."""
    dist = dist or DistContext()
    leader = dist.is_leader
    storage = LazyStorage()
    prepare_environment(settings.output_dir, gpus=settings.gpus)
    publisher: RunPublisher | None = None
    if settings.output_uri is not None and leader:
        publisher = RunPublisher(storage, settings.output_uri, settings.output_dir)
    reporter = ProgressReporter(
        client if leader else None,
        stop,
        epochs=settings.epochs,
        keepalive_s=settings.keepalive_s,
    )
    folder = run_dir(settings.output_dir)
    keeper: CheckpointKeeper | None = None
    try:
        try:
            device = settings.device_name() if not dist.distributed else "cpu"
            try:
                device = _device(settings, dist)
            finally:
                reporter.event(
                    "trainer_started",
                    f"huggingface trainer started (attempt {settings.attempt})",
                    _started_data(settings, dist, device),
                )
            prepared = dist.leader_first(
                lambda: prepare(settings, reporter, stop, storage),
                exit_code=lambda: _leader_exit_code(stop),
            )
            stop.check()
            data = load_data(prepared.dataset, settings.task)
            if prepared.model_type is not None:
                from trainer.modeling import check_model_type

                check_model_type(prepared.model_type, data.task)  # before the long imports
            state = initial_state(settings, data, prepared.restored, dist)
            if leader:
                keeper = CheckpointKeeper(folder, state, publisher)
                if prepared.restored is not None:
                    keeper.last = prepared.restored.source
                    keeper.write_results()  # the earlier attempts' rows come first
            stop.check()
            train(
                settings,
                data,
                prepared,
                reporter=reporter,
                stop=stop,
                dist=dist,
                keeper=keeper,
                device=device,
            )
            if publisher is not None:  # keep-alives go on while the run is uploaded
                publisher.publish_folder(
                    folder / "model", MARKER, (folder / "model" / MARKER).read_bytes()
                )
                publisher.publish(folder / "results.csv")
                stop.check()
        finally:
            reporter.close()
    except LeaderFailed as exc:  # the other ranks: rank 0 reports
        return exc.exit_code
    except BaseException as exc:
        return _report_failure(
            settings,
            client,
            exc,
            stop=stop,
            dist=dist,
            reporter=reporter,
            keeper=keeper,
            publisher=publisher,
        )
    finally:
        dist.close()
    metrics = keeper.state.last_metrics() if keeper is not None else {}
    if keeper is not None and keeper.state.best_metric is not None:
        metrics["best/val/accuracy"] = keeper.state.best_metric
    delivered = send_done(
        client if leader else None,
        "succeeded",
        reason=None,
        metrics=metrics,
        artifacts=collect_artifacts(folder, keeper, publisher),
    )
    return EXIT_OK if delivered else EXIT_FAILED


def _report_failure(
    settings: TrainerSettings,
    client: CallbackClient | None,
    exc: BaseException,
    *,
    stop: StopFlag,
    dist: DistContext,
    reporter: ProgressReporter,
    keeper: CheckpointKeeper | None,
    publisher: RunPublisher | None,
) -> int:
    if not dist.is_leader or client is None:  # the other ranks: rank 0 reports
        log.error("training stopped on rank %d: %s", dist.rank, describe(exc))
        return EXIT_CANCELLED if stop.cancel_requested else EXIT_FAILED
    sigterm = stop.cancel_requested or isinstance(exc, TrainingCancelled)

    def reason(failure: BaseException) -> str:
        # A SIGTERM that was no cancel, or a peer's stop: another rank failed, and says why.
        if sigterm or isinstance(failure, PeerStopped):
            return (
                "DistributedTrainingError: another training process failed and the run was "
                "stopped (see the trainer log)"
            )
        return describe(failure)

    return report_failure(
        client,
        exc,
        stop,
        metrics=reporter.metrics,
        artifacts=lambda: collect_artifacts(run_dir(settings.output_dir), keeper, publisher),
        describe=reason,
        # In a distributed run torchrun also stops the workers with SIGTERM when another rank
        # failed: only the launcher's marker makes it a cancellation.
        sigterm_cancels=lambda: (
            not dist.distributed or cancel_requested_by_launcher(settings.output_dir)
        ),
    )


def launch(settings: TrainerSettings, client: CallbackClient, stop: StopFlag) -> int:
    """TRAINYARD_GPUS > 1: check the GPUs, then run the attempt in that many processes."""
    visible = visible_cuda_devices()
    if visible < settings.gpus:
        reason = describe(
            GPUUnavailableError(
                f"TRAINYARD_GPUS={settings.gpus} asks for {settings.gpus} GPUs but "
                f"{visible} CUDA device(s) are visible"
            )
        )
        log.error(reason)
        prepare_environment(settings.output_dir)
        try:
            client.event(
                "trainer_started",
                f"huggingface trainer started (attempt {settings.attempt})",
                _started_data(settings, DistContext(), settings.device_name()),
            )
            client.done("failed", reason=reason)
        except CallbackError as exc:
            log.error("callbacks not delivered: %s", exc)
        return EXIT_FAILED
    return run_workers(settings.output_dir, client, stop, settings.gpus)
