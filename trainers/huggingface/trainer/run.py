"""One training attempt in this process (`run_attempt`, 0 or 1 GPU), or one rank of a
distributed run (`run_rank`; the launching process is trainer/launcher.py): set-up, the
transformers ``Trainer``, and the outcome.

The offline set-up is in trainer/environment.py, the Trainer's arguments in
trainer/arguments.py, what the reporting process readies before training in
trainer/preparation.py and the run's layout and artifacts in trainer/artifacts.py.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.outcome import EXIT_FAILED, EXIT_OK, describe, report_failure, report_success
from trainer_kit.output_dir import run_dir, trainer_dir
from trainer_kit.publishing import RunPublisher
from trainer_kit.storage import LazyStorage
from trainer_kit.system_metrics import SystemSampler

from trainer.arguments import training_arguments
from trainer.artifacts import collect_artifacts
from trainer.checkpoints import MARKER, CheckpointKeeper, CheckpointState, write_marker
from trainer.dataset import LoadedData, load_data
from trainer.distributed import DistContext, LeaderFailed, visible_cuda_devices
from trainer.environment import prepare_environment, transformers_version
from trainer.handover import ddp_dir, read_prepared, write_outcome, write_progress
from trainer.preparation import Prepared, initial_state, prepare
from trainer.progress import ProgressReporter
from trainer.resume import RestoredCheckpoint
from trainer.settings import TEXT_CLASSIFICATION, TrainerSettings

if TYPE_CHECKING:  # trainer.hooks imports transformers, which must wait for the environment
    from trainer.hooks import Announce

log = logging.getLogger("trainyard.trainer.run")

FRAMEWORK = "huggingface"


class GPUUnavailableError(RuntimeError):
    """TRAINYARD_GPUS asks for more CUDA devices than are visible."""


class PeerStopped(Exception):  # noqa: N818 - a control-flow signal
    """Another rank stopped the run (that rank's outcome says why)."""


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
    announce: Announce,
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
            exit_code=lambda: EXIT_FAILED,
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
    callback = TrainyardCallback(
        reporter, stop, dist, keeper=keeper, announce=announce, train_samples=len(data.train)
    )
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


def started_message(settings: TrainerSettings) -> str:
    return f"huggingface trainer started (attempt {settings.attempt})"


def started_data(settings: TrainerSettings, world_size: int, device: str) -> dict[str, Any]:
    """``trainer_started``'s data (sent by the process that reports)."""
    return {
        "framework": FRAMEWORK,
        "transformers_version": transformers_version(),
        "model": settings.model,
        "task": settings.task or "auto",
        "device": device,
        "world_size": world_size,
        "attempt": settings.attempt,
        "pid": os.getpid(),
        **({"resume_from": settings.resume_from} if settings.resume_from else {}),
    }


def _device(settings: TrainerSettings) -> str:
    """The one device of a single-process run; raises `GPUUnavailableError` when
    TRAINYARD_GPUS=1 and no CUDA device is visible."""
    if settings.gpus == 0:
        return "cpu"
    if visible_cuda_devices() < 1:
        raise GPUUnavailableError(
            f"TRAINYARD_GPUS={settings.gpus} asks for a GPU but no CUDA device is visible"
        )
    return "cuda:0"


def load_checked(
    settings: TrainerSettings, prepared: Prepared, dist: DistContext
) -> tuple[LoadedData, CheckpointState]:
    """The dataset, checked against the model type, and the state the checkpoints carry."""
    data = load_data(prepared.dataset, settings.task)
    if prepared.model_type is not None:
        from trainer.modeling import check_model_type

        check_model_type(prepared.model_type, data.task)  # before the long imports
    return data, initial_state(settings, data, prepared.restored, dist)


def new_keeper(
    folder: Path,
    state: CheckpointState,
    publisher: RunPublisher | None,
    restored: RestoredCheckpoint | None,
) -> CheckpointKeeper:
    keeper = CheckpointKeeper(folder, state, publisher)
    if restored is not None:
        keeper.last = restored.source
        keeper.write_results()  # the earlier attempts' rows come first
    return keeper


def final_metrics(keeper: CheckpointKeeper | None) -> dict[str, float]:
    """The last epoch's metrics and the best accuracy: ``done(succeeded)``'s metrics."""
    if keeper is None:
        return {}
    metrics = keeper.state.last_metrics()
    if keeper.state.best_metric is not None:
        metrics["best/val/accuracy"] = keeper.state.best_metric
    return metrics


def publish_run(publisher: RunPublisher, folder: Path) -> None:
    """Upload the final model (its ``COMPLETE`` last) and ``results.csv``."""
    publisher.publish_folder(folder / "model", MARKER, (folder / "model" / MARKER).read_bytes())
    publisher.publish(folder / "results.csv")


def run_attempt(settings: TrainerSettings, client: CallbackClient, stop: StopFlag) -> int:
    """Train once in this process (0 or 1 GPU) and report the outcome; returns the exit code."""
    dist = DistContext()
    storage = LazyStorage()
    prepare_environment(settings.output_dir, gpus=settings.gpus)
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
    folder = run_dir(settings.output_dir)
    keeper: CheckpointKeeper | None = None
    try:
        try:
            device = settings.device_name()
            try:
                device = _device(settings)
            finally:
                reporter.event(
                    "trainer_started", started_message(settings), started_data(settings, 1, device)
                )
            prepared = prepare(settings, reporter, stop, storage)
            stop.check()
            data, state = load_checked(settings, prepared, dist)
            keeper = new_keeper(folder, state, publisher, prepared.restored)
            stop.check()
            train(
                settings,
                data,
                prepared,
                reporter=reporter,
                stop=stop,
                dist=dist,
                keeper=keeper,
                announce=reporter.announce_epoch,
                device=device,
            )
            if publisher is not None:  # keep-alives go on while the run is uploaded
                publish_run(publisher, folder)
                stop.check()
        finally:
            reporter.close()
    except BaseException as exc:
        last = keeper.last if keeper is not None else None
        return report_failure(
            client,
            exc,
            stop,
            metrics=reporter.metrics,
            artifacts=lambda: collect_artifacts(folder, last, publisher),
        )
    return report_success(
        client,
        metrics=final_metrics(keeper),
        artifacts=collect_artifacts(folder, keeper.last, publisher),
    )


def run_rank(settings: TrainerSettings, stop: StopFlag, dist: DistContext) -> int:
    """One rank of a distributed run (started by trainer/launcher.py through torchrun): train,
    and on rank 0 write the run folder and hand each epoch over; every rank writes its outcome
    (trainer/handover.py). Sends nothing. Returns 1 when this rank failed (torchrun then stops
    the others), else 0."""
    handover = ddp_dir(settings.output_dir)
    prepare_environment(settings.output_dir, gpus=settings.gpus)
    reporter = ProgressReporter(None, stop, epochs=settings.epochs, keepalive_s=1.0)
    keeper: CheckpointKeeper | None = None

    def announce(completed: int, metrics: Mapping[str, float], where: str) -> None:
        write_progress(handover, stop, completed, metrics, where)

    try:
        try:
            device = dist.init()
            prepared = Prepared.from_dict(read_prepared(handover))
            data, state = load_checked(settings, prepared, dist)
            if dist.is_leader:
                keeper = new_keeper(run_dir(settings.output_dir), state, None, prepared.restored)
            stop.check()
            train(
                settings,
                data,
                prepared,
                reporter=reporter,
                stop=stop,
                dist=dist,
                keeper=keeper,
                announce=announce,
                device=device,
            )
        finally:
            reporter.close()
            dist.close()
    except TrainingCancelled:
        write_outcome(handover, dist.rank, "cancelled")
        return EXIT_OK
    except (PeerStopped, LeaderFailed):  # the rank that stopped the run says why
        write_outcome(handover, dist.rank, "stopped")
        return EXIT_OK
    except BaseException as exc:
        log.error("training failed on rank %d", dist.rank, exc_info=exc)
        write_outcome(handover, dist.rank, "failed", reason=describe(exc))
        return EXIT_FAILED
    write_outcome(handover, dist.rank, "succeeded", metrics=final_metrics(keeper))
    return EXIT_OK
