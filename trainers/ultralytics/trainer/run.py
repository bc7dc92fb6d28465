"""One training attempt: offline set-up, ``YOLO(model).train(...)``, and the final ``done``.

Offline and explicit
--------------------
Before Ultralytics is imported, `ENVIRONMENT.prepare` points everything it writes at a folder
inside the output dir and switches off everything that would reach the network:

* ``YOLO_CONFIG_DIR=<output>/.trainer`` — Ultralytics' settings file (and its DDP temp files)
  live there, never in ``$HOME``, so parallel runs cannot clobber one another's settings;
  ``MPLCONFIGDIR`` likewise (unless set already).
* ``YOLO_OFFLINE=1`` (no online checks, downloads fail fast instead of hanging) and
  ``YOLO_AUTOINSTALL=false`` (no pip installs); ``ULTRALYTICS_API_KEY`` is removed.
* after import, Ultralytics' settings are updated: ``sync`` (analytics) off, the Platform API
  key empty, and every integration off — clearml, comet, dvc, mlflow, raytune, tensorboard,
  wandb. The MLflow callback in particular switches itself on whenever mlflow is importable;
  tracking is the platform's job, so it stays off explicitly.
* ``plots=False`` always: plotting needs Arial.ttf, which Ultralytics downloads. Its dataset
  check also probes for that font online even without plots, so the trainer replaces
  ``ultralytics.data.utils.check_font`` with a no-op (nothing uses the font with plots off).
* ``amp=False`` unless ``TRAINYARD_HYPERPARAMETERS`` sets ``amp``: on a GPU, Ultralytics' AMP
  check loads ``yolo26n.pt``, which it would download; offline it skips the check and enables
  AMP unchecked. Opting in with ``{"amp": true}`` is fine where that trade-off is acceptable.
* an ``s3://bucket/prefix`` dataset is first mirrored into ``<output>/.trainer/dataset/``
  (trainer_kit/storage.py); from then on it is trained exactly like a ``file://`` one.
* the dataset's ``data.yaml`` is copied to ``<output>/.trainer/data.yaml`` with ``path``
  made absolute (Ultralytics would resolve a relative ``path`` against the working directory
  or its global datasets dir, not the dataset folder) and without its ``download`` key
  (Ultralytics would fetch a URL or even ``exec`` a script from it when folders are missing).

Ultralytics train() arguments
-----------------------------
``data``, ``epochs``, ``imgsz``, ``batch``, ``device`` (``cpu`` for 0 GPUs, else ``0,1,…``),
``project=<output dir>``, ``name=run``, ``exist_ok=True`` and ``plots=False`` come from
the contract; the defaults ``workers=2`` and ``amp=False`` may be overridden by any other
Ultralytics train argument given in ``TRAINYARD_HYPERPARAMETERS`` (lr0, lrf, momentum,
weight_decay, optimizer, patience, mosaic, seed, …); Ultralytics validates them.

Resume
------
With ``TRAINYARD_RESUME_FROM`` set, the checkpoint is copied (or downloaded) into this attempt's
``run/weights/last.pt`` and prepared for Ultralytics' own resume before the first heartbeat,
which then already reports the checkpoint's completed epochs (trainer/resume.py); training goes
on with the next epoch: ``YOLO(last.pt).train(..., resume=last.pt)``. Every save is atomic
(trainer/atomic_save.py) and ``save`` cannot be switched off, so each epoch leaves a whole
checkpoint to resume from.

Object storage
--------------
With ``TRAINYARD_OUTPUT_URI`` set, every checkpoint is published there as it is saved (atomic
upload, see trainer_kit/publishing.py), and after training the whole run folder; ``done.artifacts``
then holds ``s3://`` URIs (on failure or cancellation: what had been published by then).
Without it, artifacts are the local paths of the run folder, as before.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer_kit.callbacks import CallbackClient
from trainer_kit.callbacks import clean_metrics as _clean
from trainer_kit.control import StopFlag
from trainer_kit.outcome import collect_artifacts, report_failure, report_success
from trainer_kit.output_dir import FrameworkEnvironment, run_dir
from trainer_kit.publishing import RunPublisher, local_path
from trainer_kit.storage import LazyStorage
from trainer_kit.system_metrics import SystemSampler
from trainer_kit.workers import withheld_from_environ

from trainer.atomic_save import make_saves_atomic
from trainer.dataset import prepare_data
from trainer.progress import ProgressReporter
from trainer.resume import RestoredCheckpoint, restore_checkpoint
from trainer.settings import TrainerSettings

log = logging.getLogger("trainyard.trainer.run")

DEFAULT_TRAIN_ARGS: Mapping[str, Any] = {"workers": 2, "amp": False}
_DISABLED_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


# Set before Ultralytics is imported (it reads them then): its settings file in the output dir,
# offline, no auto-install, no hub key (trainer_kit/output_dir.py).
ENVIRONMENT = FrameworkEnvironment(
    set={"YOLO_CONFIG_DIR": "{private}", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"},
    default={"MPLCONFIGDIR": "{private}/matplotlib"},
    remove=("ULTRALYTICS_API_KEY",),
)


def configure_ultralytics(private: Path) -> None:
    """Offline, integration-free Ultralytics settings (after import; persisted for DDP workers)."""
    from ultralytics.utils import SETTINGS

    SETTINGS.update(
        sync=False,
        api_key="",
        vscode_msg=False,
        openvino_msg=False,
        datasets_dir=str(private / "datasets"),
        weights_dir=str(private / "weights"),
        runs_dir=str(private / "runs"),
        **dict.fromkeys(_DISABLED_INTEGRATIONS, False),
    )

    import ultralytics.data.utils as data_utils

    def no_font_download(font: str = "Arial.ttf") -> None:
        """plots=False: no font is needed, and none may be downloaded."""

    data_utils.check_font = no_font_download


def train_args(settings: TrainerSettings, data: str) -> dict[str, Any]:
    """The keyword arguments for ``YOLO.train``."""
    return {
        **DEFAULT_TRAIN_ARGS,
        **settings.hyperparameters,
        "data": data,
        "epochs": settings.epochs,
        "imgsz": settings.imgsz,
        "batch": settings.batch,
        "device": settings.ultralytics_device(),
        "project": str(settings.output_dir),
        "name": run_dir(settings.output_dir).name,
        "exist_ok": True,
        "plots": False,
    }


def resume_train_args(settings: TrainerSettings) -> dict[str, Any]:
    """The arguments written into a resumed checkpoint: this attempt's, and its run folder as
    ``save_dir`` (the checkpoint's names the earlier attempt's). ``data`` is left out: it is
    only known once the dataset is ready, and ``train(data=…)`` overrides it on resume."""
    args = train_args(settings, "")
    del args["data"]
    return {**args, "save": True, "save_dir": str(run_dir(settings.output_dir))}


def load_ultralytics(output_dir: Path) -> Path:
    """Set up the environment, import Ultralytics and configure it; returns the private dir."""
    private = ENVIRONMENT.prepare(output_dir)
    import ultralytics  # noqa: F401  after ENVIRONMENT.prepare: settings are read at import

    configure_ultralytics(private)
    return private


def restore(settings: TrainerSettings, storage: LazyStorage) -> RestoredCheckpoint | None:
    """Prepare this attempt's resume from ``TRAINYARD_RESUME_FROM``, if set."""
    source = settings.resume_source()
    if source is None:
        return None
    load_ultralytics(settings.output_dir)  # the checkpoint pickles Ultralytics' classes
    return restore_checkpoint(
        source,
        run_dir(settings.output_dir),
        train_args=resume_train_args(settings),
        epochs=settings.epochs,
        storage=storage,
    )


# The run's files ``done`` reports (relative to the run folder).
ARTIFACT_FILES: Mapping[str, str] = {
    "weights": "weights/best.pt",
    "last": "weights/last.pt",
    "results": "results.csv",
}


def _result_metrics(result: Any) -> dict[str, float]:
    if isinstance(result, Mapping):
        return _clean(result)
    results_dict = getattr(result, "results_dict", None)
    return _clean(results_dict) if isinstance(results_dict, Mapping) else {}


class ChildReaper:
    """DDP: once a stop is requested, SIGTERM our child processes (the torch.distributed
    launcher, which stops its workers) — the batch-boundary checks run in those workers'
    detached callbacks, not here. Polls, so a launcher started after the request is caught too.
    """

    def __init__(self, stop: StopFlag, interval_s: float = 0.5) -> None:
        self._stop = stop
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ddp-reaper", daemon=True)

    def __enter__(self) -> ChildReaper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._halt.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._halt.wait(self._interval_s):
            if not self._stop.stop_requested:
                continue
            for child in psutil.Process().children():
                with contextlib.suppress(psutil.Error):
                    child.terminate()


def train(
    settings: TrainerSettings,
    reporter: ProgressReporter,
    stop: StopFlag,
    storage: LazyStorage | None = None,
    restored: RestoredCheckpoint | None = None,
) -> dict[str, float]:
    """Run Ultralytics (resuming ``restored`` if given); return the final metrics. Raises on
    failure or when stopped."""
    private = load_ultralytics(settings.output_dir)
    stop.check()
    from ultralytics import YOLO

    args = train_args(settings, prepare_data(settings, private, storage, stop))
    stop.check()
    if restored is None:
        model = YOLO(settings.model, task=settings.task)
    else:
        model = YOLO(str(restored.path), task=settings.task)
        args["resume"] = str(restored.path)
    model.add_callback("on_pretrain_routine_start", make_saves_atomic)
    reporter.attach(model)
    log.info("training %s on %s with %s", settings.model, args["device"], args)
    if settings.gpus > 1 and settings.output_uri is not None and storage is not None:
        storage()  # built now, with the keys: the uploads during training need no environment
    # With DDP, Ultralytics starts torchrun itself with this process's environment; its workers
    # never call the backend nor storage (this process reports), so they get no secret.
    with withheld_from_environ() if settings.gpus > 1 else contextlib.nullcontext():
        result = model.train(**args)
    stop.check()  # SIGTERM during the final validation/strip
    return {**reporter.final_metrics, **_result_metrics(result)}


def run_attempt(settings: TrainerSettings, client: CallbackClient, stop: StopFlag) -> int:
    """Train once and report the outcome; returns the process exit code."""
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
        publish=publisher.publish if publisher is not None else local_path,
        system=SystemSampler(gpus=settings.gpus),  # its own GPUs only, none on a CPU run
    )
    ddp = settings.gpus > 1
    folder = run_dir(settings.output_dir)
    try:
        with ChildReaper(stop) if ddp else contextlib.nullcontext():
            reporter.event(
                "trainer_started",
                f"ultralytics trainer started (attempt {settings.attempt})",
                {
                    "framework": "ultralytics",
                    "ultralytics_version": importlib.metadata.version("ultralytics"),
                    "model": settings.model,
                    "task": settings.task,
                    "device": settings.ultralytics_device(),
                    "attempt": settings.attempt,
                    "pid": os.getpid(),
                    **({"resume_from": settings.resume_from} if settings.resume_from else {}),
                },
            )
            try:
                restored = restore(settings, storage)
                if restored is not None:
                    reporter.checkpoint_restored(restored.source, restored.completed_epochs)
                stop.check()
                reporter.start(
                    watch_run_dir=folder if ddp else None,
                    epoch=0 if restored is None else restored.completed_epochs,
                    metrics=None if restored is None else restored.metrics,
                )
                metrics = train(settings, reporter, stop, storage, restored)
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
        )
    return report_success(
        client, metrics=metrics, artifacts=collect_artifacts(folder, ARTIFACT_FILES, publisher)
    )
