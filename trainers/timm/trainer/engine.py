"""The training loop: timm model, data, optimizer and schedule, one process or one DDP rank.

`train` runs the epochs of a `TrainJob` (trainer/job.py) and returns the final metrics. It is
the same code in a single process (``TRAINYARD_GPUS`` 0 or 1) and in each DDP rank
(trainer/distributed.py, trainer/ranks.py). What the epochs need is built once by
trainer/parts.py:

* data: the image folder (trainer/dataset.py) with timm's transforms
  (``timm.data.create_transform``: RandomResizedCrop at ``TRAINYARD_IMGSZ``, flips, colour
  jitter, auto-augment for training; resize + centre crop for validation, mean/std of the
  model's config); a ``DistributedSampler`` (also with one process: the shuffle then depends on
  the seed and epoch only); ``TRAINYARD_BATCH`` is the global batch, split over the ranks;
  optional mixup/cutmix (``timm.data.Mixup``);
* model: trainer/model.py; optimizer ``timm.optim.create_optimizer_v2``; per-epoch LR schedule
  ``timm.scheduler.create_scheduler_v2`` (set from the epoch number at the start of each epoch,
  so a resumed run follows the same schedule); AMP autocast (bf16, or fp16 with a GradScaler)
  on CUDA by default;
* every epoch: train, validate (each rank its share of val/, sums all-reduced), then rank 0
  writes ``weights/best.pt`` (when the epoch is the best so far), ``weights/last.pt`` and
  ``results.csv`` atomically and hands an `EpochReport` to the sink (which announces the
  checkpoint and sends the heartbeat, or, in DDP, tells the launching process);
* before every batch the ranks agree whether any of them must stop (SIGTERM, a refused
  callback, a failed upload), so all stop at the same batch boundary;
* a `ThroughputMeter` (the heartbeats' samples/s and data wait, trainer_kit/system_metrics.py)
  times each training step and the wait for its batch; a single process only (a DDP rank's
  meter would be in another process than the reporter's; its CPU and GPUs are still reported).

Metrics (per epoch, ``results.csv`` columns after ``epoch``): ``train/loss`` (mean training
loss, with label smoothing/mixup as trained), ``val/loss`` (plain cross-entropy), ``val/top1``
and ``val/top5`` (accuracy in percent, 0 to 100; top-5 is top-min(5, classes)), ``lr`` (of the
epoch) and ``train/images_per_s``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

from trainer_kit.atomic_save import replace_atomically
from trainer_kit.control import StopFlag
from trainer_kit.system_metrics import ThroughputMeter

from trainer.job import EpochReport, EpochSink, TrainJob
from trainer.parts import Parts, build_parts, seed_everything
from trainer.ranks import Distributed, check_stop
from trainer.resume import FORMAT, load_checkpoint, row_metrics, write_results

log = logging.getLogger("trainyard.trainer.engine")


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + (epoch + 1) * 10_007 + rank) % 2**63


def _batches(loader: Any, device: Any) -> Iterator[tuple[Any, Any]]:
    for images, targets in loader:
        yield images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


def _train_epoch(
    parts: Parts, job: TrainJob, stop: StopFlag, dist: Distributed, meter: ThroughputMeter
) -> tuple[float, float, float]:
    """(mean loss, images, seconds) over all ranks."""
    import torch

    hp = job.hyperparameters
    parts.model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dist.device)
    seen = 0
    started = time.monotonic()
    for batch, targets in _batches(meter.batches(parts.train_loader), dist.device):
        check_stop(stop, dist)
        images = batch
        if parts.mixup is not None and len(batch) >= 2:
            even = len(batch) - len(batch) % 2  # timm's Mixup needs an even batch
            images, soft = parts.mixup(batch[:even], targets[:even])
            with parts.autocast():
                loss = parts.mixup_criterion(parts.model(images), soft)
        else:
            with parts.autocast():
                loss = parts.criterion(parts.model(images), targets)
        parts.optimizer.zero_grad(set_to_none=True)
        parts.scaler.scale(loss).backward()
        if hp.clip_grad is not None:
            parts.scaler.unscale_(parts.optimizer)
            torch.nn.utils.clip_grad_norm_(parts.model.parameters(), hp.clip_grad)
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        loss_sum += loss.detach().double() * len(images)
        seen += len(images)
        meter.step_done(len(images))
    check_stop(stop, dist)
    seconds = time.monotonic() - started
    total_loss, total_seen, total_seconds = dist.all_sum(
        [float(loss_sum.item()), float(seen), seconds]
    )
    mean_seconds = total_seconds / dist.world_size
    return total_loss / max(total_seen, 1.0), total_seen, mean_seconds


def _validate(parts: Parts, stop: StopFlag, dist: Distributed) -> tuple[float, float, float]:
    """(mean cross-entropy, top-1 %, top-k %) over all ranks' shares of val/."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    parts.bare.eval()  # not through DDP: the ranks' batch counts may differ
    k = min(5, parts.num_classes)
    totals = torch.zeros(4, dtype=torch.float64, device=dist.device)
    with torch.inference_mode():
        for images, targets in _batches(parts.val_loader, dist.device):
            if stop.stop_requested:
                break  # no collective in this loop: the ranks agree after it
            with parts.autocast():
                logits = parts.bare(images)
            logits = logits.float()
            top = logits.topk(k, dim=1).indices
            hits = top.eq(targets.unsqueeze(1))
            totals += torch.stack(
                [
                    F.cross_entropy(logits, targets, reduction="sum").double(),
                    hits[:, 0].sum().double(),
                    hits.any(dim=1).sum().double(),
                    torch.tensor(float(len(targets)), dtype=torch.float64, device=dist.device),
                ]
            )
    check_stop(stop, dist)
    loss, top1, topk, count = dist.all_sum([float(v) for v in totals.tolist()])
    count = max(count, 1.0)
    return loss / count, 100.0 * top1 / count, 100.0 * topk / count


def _save(job: TrainJob, parts: Parts, epoch: int, rows: list[dict[str, Any]], best: Any) -> None:
    import torch

    hp = job.hyperparameters
    common = {
        "format": FORMAT,
        "architecture": parts.architecture,
        "num_classes": parts.num_classes,
        "classes": list(parts.classes),
        "imgsz": job.imgsz,
        "model": parts.bare.state_dict(),
        "epoch": epoch,
    }
    if best is not None and best["epoch"] == epoch:
        weights = {**common, "kind": "weights", "metrics": row_metrics(rows[-1])}
        replace_atomically(job.best_path, lambda tmp: torch.save(weights, tmp))
    checkpoint = {
        **common,
        "kind": "checkpoint",
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "scaler": parts.scaler.state_dict(),
        "epochs": job.epochs,
        "best": best,
        "results": rows,
        "hyperparameters": hp.model_dump(),
    }
    replace_atomically(job.last_path, lambda tmp: torch.save(checkpoint, tmp))
    write_results(job.results_path, rows)


def _better(top1: float, loss: float, best: dict[str, Any] | None) -> bool:
    if best is None:
        return True
    return (top1, -loss) > (float(best["val/top1"]), -float(best["val/loss"]))


def train(
    job: TrainJob,
    sink: EpochSink,
    stop: StopFlag,
    dist: Distributed,
    meter: ThroughputMeter | None = None,
) -> dict[str, float]:
    """Run the remaining epochs of ``job``; returns the final epoch's metrics plus
    ``best/epoch`` and ``best/val/top1``. Raises when stopped or on failure. ``meter``: where
    the steps are timed (the reporter's, in a single process)."""
    meter = meter if meter is not None else ThroughputMeter()
    checkpoint = load_checkpoint(job.resume, str(job.resume)) if job.resume else None
    parts, start_epoch, rows, best = build_parts(job, dist, checkpoint)
    del checkpoint
    hp = job.hyperparameters
    if start_epoch:
        log.info("resuming after epoch %d of %d", start_epoch, job.epochs)
    for epoch in range(start_epoch, job.epochs):
        check_stop(stop, dist)
        seed_everything(_epoch_seed(hp.seed, epoch, dist.rank))
        parts.sampler.set_epoch(epoch)
        if parts.scheduler is not None:
            parts.scheduler.step(epoch)
        lr = float(parts.optimizer.param_groups[0]["lr"])
        train_loss, images, seconds = _train_epoch(parts, job, stop, dist, meter)
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"training loss is {train_loss} in epoch {epoch + 1}: lower the lr hyperparameter"
            )
        val_loss, top1, topk = _validate(parts, stop, dist)
        metrics = {
            "train/loss": train_loss,
            "val/loss": val_loss,
            "val/top1": top1,
            "val/top5": topk,
            "lr": lr,
            "train/images_per_s": images / seconds if seconds > 0 else 0.0,
        }
        completed = epoch + 1
        rows.append({"epoch": completed, **metrics})
        is_best = _better(top1, val_loss, best)
        if is_best:
            best = {"epoch": completed, "val/top1": top1, "val/loss": val_loss}
        log.info(
            "epoch %d/%d: %s",
            completed,
            job.epochs,
            ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
        )
        if dist.is_main:
            _save(job, parts, completed, rows, best)
            sink(
                EpochReport(
                    epoch=completed,
                    epochs=job.epochs,
                    metrics=metrics,
                    last=job.last_path,
                    best=job.best_path if is_best else None,
                )
            )
    final = row_metrics(rows[-1])
    if best is not None:
        final["best/epoch"] = float(best["epoch"])
        final["best/val/top1"] = float(best["val/top1"])
    return final
