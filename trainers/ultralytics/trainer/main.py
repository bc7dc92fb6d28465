"""Trainyard trainer for Ultralytics YOLO: the `trainyard-trainer` (`python -m trainer`) entrypoint.

The platform launches this program once per attempt and talks to it only through the
environment and HTTP callbacks (docs/trainer-contract.md). It imports nothing from the platform.

Environment (prefix ``TRAINYARD_``)
-----------------------------------
==========================  ========  =========================================================
variable                    required  meaning
==========================  ========  =========================================================
TRAINYARD_JOB_ID            yes       the job's id (``job_…``)
TRAINYARD_ATTEMPT           yes       attempt number, integer ≥ 1
TRAINYARD_CALLBACK_URL      yes       backend base URL, e.g. ``http://127.0.0.1:8000``
TRAINYARD_CALLBACK_TOKEN    yes       bearer token for this job and attempt (secret, never logged)
TRAINYARD_MODEL             yes       ``yolo11n.yaml`` (random init), or a local weights path
TRAINYARD_DATASET_URI       yes       ``file:///abs/path`` of the folder holding ``data.yaml``
                                      (for ``classify``: the image-folder dataset itself), or
                                      ``s3://bucket/prefix`` (downloaded first)
TRAINYARD_OUTPUT_DIR        yes       folder for the run; Ultralytics writes the run into
                                      ``<dir>/run/``, the trainer its private files
                                      (settings, data.yaml copy) into ``<dir>/.trainer/``
TRAINYARD_TASK              no        ``detect`` (default), ``segment``, ``classify``, ``pose``,
                                      ``obb``
TRAINYARD_EPOCHS            yes       total epochs, integer ≥ 1
TRAINYARD_IMGSZ             no        image size, integer ≥ 1 (default 640)
TRAINYARD_BATCH             no        batch size, integer ≥ 1 (default 16)
TRAINYARD_GPUS              no        GPUs to use (default 0 = CPU; n > 1 trains with DDP)
TRAINYARD_HYPERPARAMETERS   no        JSON object of further Ultralytics train arguments
                                      (default ``{}``); keys the trainer sets itself (model,
                                      data, task, epochs, imgsz, batch, device, project, name,
                                      save_dir, exist_ok, mode, resume, plots) are refused
TRAINYARD_KEEPALIVE_S       no        seconds between keep-alive heartbeats (default 15, > 0)
TRAINYARD_LOG_FORMAT        no        ``console`` (default) or ``json`` (a JSON object a line)
TRAINYARD_OUTPUT_URI        no        ``s3://bucket/prefix``: checkpoints (atomically) and the
                                      run's files are published there; artifacts become URIs
==========================  ========  =========================================================

S3 access uses the standard ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` and ``AWS_DEFAULT_REGION`` (never printed; see trainer_kit/storage.py).

A missing or malformed variable: exit 2 with one line on stderr naming it, no callback.

Exit codes
----------
* 0 — training succeeded and ``done(succeeded)`` was delivered.
* 1 — training failed and ``done(failed, reason)`` was sent (or ``done`` could not be
  delivered); also when the backend refused a callback with 401/403/409, after which the trainer
  stops training and sends nothing more.
* 2 — contract error (bad environment).
* 143 — stopped by SIGTERM at a batch boundary; ``done(cancelled)`` was sent (unless the
  backend had already refused this attempt's callbacks).

Callbacks (``POST {url}/v1/jobs/{job_id}/heartbeat|event|done``): a ``trainer_started``
event, a heartbeat at start (epoch 0), after every epoch (with metrics) and every
``TRAINYARD_KEEPALIVE_S`` seconds in between, a ``checkpoint_saved`` event per saved checkpoint,
and one ``done``. See trainer/run.py for how the run is kept offline.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from trainer_kit.control import StopFlag
from trainer_kit.entrypoint import run_entrypoint

from trainer.run import run_attempt
from trainer.settings import TrainerSettings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run one attempt from the environment; returns the exit code."""
    del argv  # configured only through the environment
    return run_entrypoint(load_settings, _attempt, framework="ultralytics")


def _attempt(settings: TrainerSettings, stop: StopFlag) -> int:
    with settings.callback_client() as client:
        return run_attempt(settings, client, stop)


if __name__ == "__main__":
    sys.exit(main())
