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
from collections.abc import MutableMapping
from pathlib import Path

from trainer_kit.output_dir import FrameworkEnvironment

# Set before transformers is imported (trainer_kit/output_dir.py).
ENVIRONMENT = FrameworkEnvironment(
    set={
        "HF_HOME": "{private}/huggingface",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DISABLE_KUBEFLOW_INTEGRATION": "TRUE",
        "TOKENIZERS_PARALLELISM": "false",
    },
    default={"MPLCONFIGDIR": "{private}/matplotlib"},
    remove=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
)


def prepare_environment(
    output_dir: Path, environ: MutableMapping[str, str] | None = None, *, gpus: int = 0
) -> Path:
    """Create the output folders and set the variables transformers reads at import time."""
    env = os.environ if environ is None else environ
    private = ENVIRONMENT.prepare(output_dir, env)
    if gpus == 1:
        env.setdefault("CUDA_VISIBLE_DEVICES", "0")  # one GPU: no DataParallel over others
    return private


def transformers_version() -> str:
    return importlib.metadata.version("transformers")
