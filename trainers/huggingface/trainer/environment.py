"""The trainer's private folders and the environment transformers is imported into.

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
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from trainer.settings import TrainerSettings


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
