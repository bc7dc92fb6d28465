"""One training attempt: offline set-up, the transformers ``Trainer``, and the final ``done``.

Offline and contained
---------------------
Before transformers is imported, `prepare_environment` points everything it writes at
``<output>/.trainer/`` and switches off everything that would reach the network:
``HF_HOME=<output>/.trainer/huggingface``, ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``,
``HF_DATASETS_OFFLINE=1``, ``HF_HUB_DISABLE_TELEMETRY=1``, ``DISABLE_KUBEFLOW_INTEGRATION=TRUE``
(transformers would otherwise add a reporting integration inside a Kubeflow job),
``TOKENIZERS_PARALLELISM=false``; ``HF_TOKEN``/``HUGGING_FACE_HUB_TOKEN`` are removed. The
Trainer gets ``report_to="none"``: no MLflow, TensorBoard, W&B or other integration switches
itself on — tracking is the platform's job. Models load with ``local_files_only=True``.

Run layout (``<output>/run/``)
------------------------------
* ``checkpoints/checkpoint-<step>/`` — the Trainer's checkpoint of each epoch, published
  atomically (written under ``.staging/`` first, then renamed; trainer/checkpoints.py); the
  newest two are kept. Its path (or ``s3://`` URI) is ``checkpoint_saved``'s ``data.path`` and
  what ``TRAINYARD_RESUME_FROM`` points at.
* ``model/`` — the final model (``save_pretrained``: config, weights, tokenizer or image
  processor config), loadable with ``AutoModelFor…/AutoTokenizer/AutoImageProcessor
  .from_pretrained``.
* ``results.csv`` — one row per epoch: epoch, train/loss, val/loss, val/accuracy, val/f1, lr,
  train/samples_per_s.

Trainer arguments
-----------------
From the contract: ``num_train_epochs`` (TRAINYARD_EPOCHS), ``per_device_{train,eval}_batch_size``
(TRAINYARD_BATCH), the device (CPU for TRAINYARD_GPUS=0, else CUDA; several GPUs: DDP, see
trainer/distributed.py). Fixed: ``eval_strategy``/``save_strategy``/``logging_strategy`` =
``"epoch"``, ``metric_for_best_model="accuracy"`` (the Trainer's best metric, kept in its
state), ``report_to="none"``, ``disable_tqdm=True``. From TRAINYARD_HYPERPARAMETERS:
learning_rate, weight_decay, warmup_ratio (as ``warmup_steps`` < 1), lr_scheduler_type, optim,
gradient_accumulation_steps, fp16, bf16, dataloader_num_workers, seed, label_smoothing_factor.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainer_kit.callbacks import CallbackClient, CallbackError, CallbackRefused
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.outcome import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, describe, send_done
from trainer_kit.publishing import RunPublisher
from trainer_kit.sources import local_folder
from trainer_kit.storage import LazyStorage

from trainer.checkpoints import (
    MARKER,
    CheckpointKeeper,
    CheckpointState,
    checkpoint_step,
    write_marker,
)
from trainer.dataset import LoadedData, load_data
from trainer.distributed import (
    DistContext,
    LeaderFailed,
    cancel_requested_by_launcher,
    run_workers,
    visible_cuda_devices,
)
from trainer.progress import ProgressReporter
from trainer.resume import RestoredCheckpoint, check_compatible, restore_checkpoint
from trainer.settings import TEXT_CLASSIFICATION, TrainerSettings

log = logging.getLogger("trainyard.trainer.run")

FRAMEWORK = "huggingface"


class GPUUnavailableError(RuntimeError):
    """TRAINYARD_GPUS asks for more CUDA devices than are visible."""


class PeerStopped(Exception):  # noqa: N818 - a control-flow signal
    """Another rank stopped the run (rank 0 reports why)."""


def trainer_dir(output_dir: Path) -> Path:
    """The trainer's private folder inside the output dir (HF_HOME, dataset mirror, scratch)."""
    return output_dir / ".trainer"


def run_dir(settings: TrainerSettings) -> Path:
    return settings.output_dir / "run"


def prepare_environment(
    output_dir: Path, environ: dict[str, str] | None = None, *, gpus: int = 0
) -> Path:
    """Create the output folders and set the variables transformers reads at import time."""
    env = os.environ if environ is None else environ
    private = trainer_dir(output_dir)
    private.mkdir(parents=True, exist_ok=True)
    env["HF_HOME"] = str(private / "huggingface")
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["DISABLE_KUBEFLOW_INTEGRATION"] = "TRUE"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.setdefault("MPLCONFIGDIR", str(private / "matplotlib"))
    for secret in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(secret, None)
    if gpus == 1:
        env.setdefault("CUDA_VISIBLE_DEVICES", "0")  # one GPU: no DataParallel over others
    return private


def transformers_version() -> str:
    return importlib.metadata.version("transformers")


# -- stages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What rank 0 made ready before training (handed to the other ranks)."""

    dataset: Path
    restored: RestoredCheckpoint | None
    model_folder: Path | None
    model_type: str | None


def is_model_folder(model: str) -> bool:
    """A path or URI (a saved model folder), not a model type name such as ``vit``."""
    return "/" in model or ":" in model or model.startswith((".", "~"))


def prepare(
    settings: TrainerSettings,
    reporter: ProgressReporter,
    stop: StopFlag,
    storage: LazyStorage,
) -> Prepared:
    """Restore the checkpoint (if resuming), send the first heartbeat, fetch dataset and model."""
    private = trainer_dir(settings.output_dir)
    restored = None
    source = settings.resume_source()
    if source is not None:
        restored = restore_checkpoint(
            source, run_dir(settings) / "checkpoints", epochs=settings.epochs, storage=storage
        )
        reporter.checkpoint_restored(restored.source, restored.completed_epochs)
    stop.check()
    reporter.start(
        epoch=0 if restored is None else restored.completed_epochs,
        metrics=None if restored is None else restored.metrics,
    )
    dataset = local_folder(settings.dataset_uri, private / "dataset", storage, stop)
    stop.check()
    if is_model_folder(settings.model):
        folder = local_folder(settings.model, private / "model", storage, stop, what="model")
        return Prepared(dataset, restored, folder, None)
    return Prepared(dataset, restored, None, settings.model.lower())


def training_arguments(settings: TrainerSettings, folder: Path, device: str) -> Any:
    from transformers import TrainingArguments

    from trainer.distributed import PROCESS_GROUP_TIMEOUT

    hp = settings.hyperparameters
    cpu = device == "cpu"
    return TrainingArguments(
        output_dir=str(folder / ".staging"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch,
        per_device_eval_batch_size=settings.batch,
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        warmup_steps=hp.warmup_ratio,
        lr_scheduler_type=hp.lr_scheduler_type,
        optim=hp.optim,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        fp16=hp.fp16,
        bf16=hp.bf16,
        dataloader_num_workers=hp.dataloader_num_workers,
        dataloader_pin_memory=not cpu,
        seed=hp.seed,
        label_smoothing_factor=hp.label_smoothing_factor,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=None,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        load_best_model_at_end=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=cpu,
        ddp_timeout=int(PROCESS_GROUP_TIMEOUT.total_seconds()),
    )


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
    folder = run_dir(settings)
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


# -- artifacts and done ---------------------------------------------------------------------------


def newest_checkpoint(folder: Path) -> Path | None:
    checkpoints = folder / "checkpoints"
    if not checkpoints.is_dir():
        return None
    complete = [
        p
        for p in checkpoints.iterdir()
        if checkpoint_step(p) is not None and (p / MARKER).is_file()
    ]
    return max(complete, key=lambda p: checkpoint_step(p) or 0, default=None)


def collect_artifacts(
    folder: Path, keeper: CheckpointKeeper | None = None, publisher: RunPublisher | None = None
) -> dict[str, str]:
    """The run's files: absolute paths of those that exist, or with a publisher the ``s3://``
    URIs of those published so far."""
    if publisher is None:
        artifacts: dict[str, str] = {}
        if (folder / "model").is_dir():
            artifacts["weights"] = str((folder / "model").resolve())
        last = newest_checkpoint(folder)
        if last is not None:
            artifacts["last"] = str(last.resolve())
        if (folder / "results.csv").is_file():
            artifacts["results"] = str((folder / "results.csv").resolve())
        if folder.is_dir():
            artifacts["run_dir"] = str(folder.resolve())
        return artifacts
    run = publisher.relative(folder)
    uploaded = dict(publisher.uploaded)
    artifacts = {}
    if f"{run}/model" in uploaded:
        artifacts["weights"] = uploaded[f"{run}/model"]
    if keeper is not None and keeper.last is not None:
        artifacts["last"] = keeper.last
    if f"{run}/results.csv" in uploaded:
        artifacts["results"] = uploaded[f"{run}/results.csv"]
    if any(relative.startswith(f"{run}/") for relative in uploaded):
        artifacts["run_dir"] = publisher.location.uri(run)
    return artifacts


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


def initial_state(
    settings: TrainerSettings,
    data: LoadedData,
    restored: RestoredCheckpoint | None,
    dist: DistContext,
) -> CheckpointState:
    """The state the checkpoints carry: the restored one (checked against this attempt's
    dataset and schedule) or a fresh one."""
    schedule = (
        len(data.train),
        settings.batch,
        dist.world_size,
        settings.hyperparameters.gradient_accumulation_steps,
    )
    if restored is not None:
        check_compatible(restored, data.classes, schedule)
        return replace(restored.state, epochs=settings.epochs)
    return CheckpointState(
        completed_epochs=0,
        epochs=settings.epochs,
        task=data.task,
        classes=data.classes,
        train_samples=schedule[0],
        per_device_batch=schedule[1],
        world_size=schedule[2],
        gradient_accumulation_steps=schedule[3],
    )


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
    folder = run_dir(settings)
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
    if not dist.is_leader:
        log.error("training stopped on rank %d: %s", dist.rank, describe(exc))
        return EXIT_CANCELLED if stop.cancel_requested else EXIT_FAILED
    refusal = (
        exc if isinstance(exc, CallbackRefused) else (stop.refused or (client and client.refused))
    )
    sigterm = stop.cancel_requested or isinstance(exc, TrainingCancelled)
    # In a distributed run torchrun also stops the workers with SIGTERM when another rank
    # failed: only the launcher's marker makes it a cancellation.
    cancelled = sigterm and (
        not dist.distributed or cancel_requested_by_launcher(settings.output_dir)
    )
    if refusal is not None:
        log.error("%s: stopping without further callbacks", refusal)
        return EXIT_CANCELLED if cancelled else EXIT_FAILED
    folder = run_dir(settings)
    artifacts = collect_artifacts(folder, keeper, publisher)
    if cancelled:
        log.warning("stopped by SIGTERM")
        send_done(
            client,
            "cancelled",
            reason="stopped by SIGTERM",
            metrics=reporter.metrics,
            artifacts=artifacts,
        )
        return EXIT_CANCELLED
    failure: BaseException = stop.failure or exc
    reason = describe(failure)
    if sigterm or isinstance(failure, PeerStopped):
        reason = (
            "DistributedTrainingError: another training process failed and the run was "
            "stopped (see the trainer log)"
        )
    log.error("training failed", exc_info=failure)
    send_done(client, "failed", reason=reason, metrics=reporter.metrics, artifacts=artifacts)
    return EXIT_FAILED


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
