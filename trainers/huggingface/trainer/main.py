"""Trainyard trainer for Hugging Face transformers: the `trainyard-trainer` (`python -m trainer`)
entrypoint.

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
TRAINYARD_MODEL             yes       a transformers model type (``vit``, ``convnext``,
                                      ``resnet``, ``bert``, ``distilbert``, ``roberta`` …:
                                      random init) or a saved model folder (absolute path,
                                      ``file://`` or ``s3://``; trainer/modeling.py)
TRAINYARD_DATASET_URI       yes       ``file:///abs/path`` or ``s3://bucket/prefix`` (downloaded
                                      first) of the dataset folder (trainer/dataset.py)
TRAINYARD_OUTPUT_DIR        yes       folder for the run (``<dir>/run/``) and the trainer's
                                      private files (``<dir>/.trainer/``)
TRAINYARD_TASK              no        ``image-classification`` or ``text-classification``
                                      (``classify`` = image-classification); default: detected
                                      from the dataset
TRAINYARD_EPOCHS            yes       total epochs, integer ≥ 1
TRAINYARD_IMGSZ             no        image size, integer ≥ 1 (default 224)
TRAINYARD_BATCH             no        batch size per device, integer ≥ 1 (default 16)
TRAINYARD_GPUS              no        GPUs to use (default 0 = CPU; n > 1: DDP over n processes)
TRAINYARD_HYPERPARAMETERS   no        JSON object, see trainer/settings.py (default ``{}``)
TRAINYARD_KEEPALIVE_S       no        seconds between keep-alive heartbeats (default 15, > 0)
TRAINYARD_LOG_FORMAT        no        ``console`` (default) or ``json`` (a JSON object a line)
TRAINYARD_OUTPUT_URI        no        ``s3://bucket/prefix``: checkpoints (atomically) and the
                                      run's files are published there; artifacts become URIs
TRAINYARD_RESUME_FROM       no        a checkpoint folder (path, ``file://`` or ``s3://``) of an
                                      earlier attempt to continue from (trainer/resume.py)
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
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from trainer_kit.control import StopFlag
from trainer_kit.entrypoint import run_entrypoint

from trainer.distributed import WORKER_ENV, DistContext, worker_settings_env
from trainer.launcher import launch
from trainer.run import run_attempt, run_rank
from trainer.settings import TrainerSettings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run one attempt from the environment; returns the exit code."""
    del argv  # configured only through the environment
    if os.environ.get(WORKER_ENV) == "1":  # one rank of a distributed run (trainer/distributed.py)
        return run_entrypoint(lambda: load_settings(worker_settings_env()), _rank)
    return run_entrypoint(load_settings, _attempt, framework="huggingface")


def _rank(settings: TrainerSettings, stop: StopFlag) -> int:
    return run_rank(settings, stop, DistContext.from_environment())


def _attempt(settings: TrainerSettings, stop: StopFlag) -> int:
    with settings.callback_client() as client:
        if settings.gpus > 1:  # the ranks train, this process reports (trainer/launcher.py)
            return launch(settings, client, stop)
        return run_attempt(settings, client, stop)


if __name__ == "__main__":
    sys.exit(main())
