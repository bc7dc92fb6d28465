"""How long a planned run will take: from the owner's finished runs of the same model when
there are any, else a coarse prior that says it is one."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from trainyard.chat.plan import DatasetSummary, DurationEstimate
from trainyard.jobs.models import Job

# Seconds per image per epoch at 640 px for a small detector, from runs of yolo11n: on a CPU
# core pair and on one GPU. Only a starting point, and the card says so.
_PRIOR_CPU_S = 0.08
_PRIOR_GPU_S = 0.004
_REFERENCE_IMGSZ = 640
# Per-run start-up (process, model build, first validation) on top of the epochs.
_STARTUP_S = 15.0


def seconds_per_image(job: Job, images: int) -> float | None:
    """A finished run's training cost per image and epoch, normalised to 640 px."""
    elapsed = (job.progress or {}).get("elapsed_s")
    if not isinstance(elapsed, int | float) or elapsed <= 0 or images <= 0 or job.epochs <= 0:
        return None
    per_image = max(float(elapsed) - _STARTUP_S, 0.0) / (job.epochs * images)
    return per_image * (_REFERENCE_IMGSZ / job.imgsz) ** 2


def estimate_duration(
    *,
    model: str,
    epochs: int,
    imgsz: int,
    gpus: int,
    dataset: DatasetSummary | None,
    past: Sequence[tuple[Job, int]],
) -> DurationEstimate | None:
    """`past`: finished runs of `model` with the image count of their dataset."""
    if dataset is None or not dataset.images:
        return None
    scale = (imgsz / _REFERENCE_IMGSZ) ** 2
    same_hardware = [
        cost
        for job, images in past
        if (job.gpus > 0) == (gpus > 0) and (cost := seconds_per_image(job, images)) is not None
    ]
    if same_hardware:
        per_image = statistics.median(same_hardware) * scale
        runs = len(same_hardware)
        basis = f"from {runs} finished run{'s' if runs != 1 else ''} of {model}"
    else:
        per_image = (_PRIOR_GPU_S / max(gpus, 1) if gpus else _PRIOR_CPU_S) * scale
        basis = f"a rough guess: no finished run of {model} on {'GPU' if gpus else 'CPU'} yet"
    seconds = _STARTUP_S + per_image * dataset.images * epochs
    return DurationEstimate(seconds=round(seconds, 1), basis=basis)
