"""Trainyard trainer for timm image classification: the `trainyard-trainer` (`python -m
trainer`) entrypoint.

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
TRAINYARD_MODEL             yes       a timm model name (``resnet18``; random init, nothing is
                                      downloaded) or an absolute path / ``file://`` URI of a
                                      weights file (see trainer/model.py)
TRAINYARD_DATASET_URI       yes       ``file:///abs/path`` (or ``/abs/path``) of an image folder
                                      (``train/<class>/…``, ``val/<class>/…``), or
                                      ``s3://bucket/prefix`` (mirrored first)
TRAINYARD_OUTPUT_DIR        yes       folder for the run: ``<dir>/run/`` (weights/, results.csv)
                                      and the trainer's private ``<dir>/.trainer/``
TRAINYARD_TASK              no        ``classify`` (default; the only task)
TRAINYARD_EPOCHS            yes       total epochs, integer ≥ 1
TRAINYARD_IMGSZ             no        training/validation resolution, integer ≥ 1 (default 224)
TRAINYARD_BATCH             no        global batch size, integer ≥ 1 (default 32; split over
                                      the processes with DDP)
TRAINYARD_GPUS              no        GPUs to use (default 0 = CPU; n > 1 trains with DDP in n
                                      torchrun processes)
TRAINYARD_HYPERPARAMETERS   no        JSON object of timm hyperparameters (default ``{}``; see
                                      trainer/settings.py); unknown keys or bad values: exit 2
TRAINYARD_KEEPALIVE_S       no        seconds between keep-alive heartbeats (default 15, > 0)
TRAINYARD_LOG_FORMAT        no        ``console`` (default) or ``json`` (a JSON object a line)
TRAINYARD_OUTPUT_URI        no        ``s3://bucket/prefix``: checkpoints (atomically) and the
                                      run's files are published there; artifacts become URIs
TRAINYARD_RESUME_FROM       no        checkpoint of an earlier attempt to continue from (absolute
                                      path, ``file://`` or ``s3://`` URI)
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

Callbacks (``POST {url}/v1/jobs/{job_id}/heartbeat|event|done``): see trainer/run.py.
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
    return run_entrypoint(load_settings, _attempt, framework="timm")


def _attempt(settings: TrainerSettings, stop: StopFlag) -> int:
    with settings.callback_client() as client:
        return run_attempt(settings, client, stop)


if __name__ == "__main__":
    sys.exit(main())
