"""The training loop: timm model, data, optimizer and schedule, one process or one DDP rank.

`train` runs the epochs of a `TrainJob` and returns the final metrics. It is the same code in
a single process (``TRAINYARD_GPUS`` 0 or 1) and in each DDP rank (trainer/distributed.py):

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
  callback, a failed upload), so all stop at the same batch boundary.

Metrics (per epoch, ``results.csv`` columns after ``epoch``): ``train/loss`` (mean training
loss, with label smoothing/mixup as trained), ``val/loss`` (plain cross-entropy), ``val/top1``
and ``val/top5`` (accuracy in percent, 0 to 100; top-5 is top-min(5, classes)), ``lr`` (of the
epoch) and ``train/images_per_s``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from trainer_kit.atomic_save import replace_atomically
from trainer_kit.control import StopFlag, TrainingCancelled
from trainer_kit.resume import ResumeError

from trainer.dataset import ImageFolder, ImageList, scan_dataset
from trainer.model import build_model, create_model
from trainer.resume import FORMAT, load_checkpoint, row_metrics, write_results
from trainer.settings import Hyperparameters

log = logging.getLogger("trainyard.trainer.engine")


class TrainJob(BaseModel):
    """What one training run needs; JSON-serialisable for DDP workers (no secrets)."""

    model_config = ConfigDict(frozen=True)

    model: str
    dataset: Path
    run_dir: Path
    epochs: int
    imgsz: int
    batch: int
    cuda: bool
    hyperparameters: Hyperparameters
    resume: Path | None = None  # the restored checkpoint (this attempt's run/weights/last.pt)
    best_known: bool = True  # False: the best.pt of the resumed run was not restored

    @property
    def last_path(self) -> Path:
        return self.run_dir / "weights" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "weights" / "best.pt"

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.csv"


@dataclass(frozen=True)
class EpochReport:
    """An epoch that ended and whose checkpoint is saved; ``best`` is set when it is the best
    so far (best.pt was rewritten)."""

    epoch: int
    epochs: int
    metrics: dict[str, float]
    last: Path
    best: Path | None


EpochSink = Callable[[EpochReport], None]


class Distributed:
    """The processes this one trains with; ``world_size`` 1 means no process group."""

    def __init__(self, device: Any, rank: int = 0, world_size: int = 1) -> None:
        self.device = device
        self.rank = rank
        self.world_size = world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor.tolist()]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any of them."""
        if self.world_size == 1:
            return flag
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


def check_stop(stop: StopFlag, dist: Distributed) -> None:
    """The batch-boundary check, agreed between the ranks."""
    if dist.any(stop.stop_requested):
        stop.check()
        raise TrainingCancelled("another training process stopped")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + (epoch + 1) * 10_007 + rank) % 2**63


@dataclass
class _Parts:
    """Everything the epochs need, built once."""

    model: Any  # maybe DDP-wrapped
    bare: Any  # the model itself
    architecture: str
    classes: tuple[str, ...]
    optimizer: Any
    scheduler: Any
    scaler: Any
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    mixup: Any
    criterion: Any
    mixup_criterion: Any
    sampler: Any
    train_loader: Any
    val_loader: Any
    num_classes: int


def _amp(job: TrainJob, device: Any) -> tuple[bool, Any]:
    import torch

    hp = job.hyperparameters
    enabled = hp.amp if hp.amp is not None else device.type == "cuda"
    if device.type != "cuda":
        return enabled, torch.bfloat16  # CPU autocast: bfloat16
    if hp.amp_dtype == "float16":
        return enabled, torch.float16
    if hp.amp_dtype == "bfloat16" or torch.cuda.is_bf16_supported():
        return enabled, torch.bfloat16
    return enabled, torch.float16


def _loaders(job: TrainJob, dist: Distributed, data: ImageFolder, model: Any) -> tuple[Any, ...]:
    """(train sampler, train loader, val loader) with timm's transforms for ``model``."""
    import timm.data
    from torch.utils.data import DataLoader, DistributedSampler

    hp = job.hyperparameters
    config = timm.data.resolve_data_config({"input_size": (3, job.imgsz, job.imgsz)}, model=model)
    train_transform = timm.data.create_transform(
        input_size=job.imgsz,
        is_training=True,
        scale=(hp.scale_min, 1.0),
        hflip=hp.hflip,
        vflip=hp.vflip,
        color_jitter=hp.color_jitter if hp.color_jitter > 0 else None,
        auto_augment=hp.auto_augment,
        interpolation=config["interpolation"],
        mean=config["mean"],
        std=config["std"],
    )
    eval_transform = timm.data.create_transform(**config, is_training=False)
    train_set = ImageList(data.train, train_transform)
    val_set = ImageList(data.val[dist.rank :: dist.world_size], eval_transform)
    sampler = DistributedSampler(
        train_set,
        num_replicas=dist.world_size,
        rank=dist.rank,
        shuffle=True,
        seed=hp.seed,
        drop_last=False,
    )
    loader_args: dict[str, Any] = {
        "batch_size": max(1, job.batch // dist.world_size),
        "num_workers": hp.workers,
        "pin_memory": dist.device.type == "cuda",
    }
    train_loader = DataLoader(train_set, sampler=sampler, **loader_args)
    val_loader = DataLoader(val_set, shuffle=False, **loader_args)
    return sampler, train_loader, val_loader


def _optimization(job: TrainJob, model: Any, device: Any) -> tuple[Any, Any, Any, Any, str]:
    """(optimizer, LR scheduler or None, GradScaler, autocast factory, AMP description)."""
    import timm.optim
    import timm.scheduler
    import torch

    hp = job.hyperparameters
    optimizer = timm.optim.create_optimizer_v2(
        model, opt=hp.optimizer, lr=hp.lr, weight_decay=hp.weight_decay, momentum=hp.momentum
    )
    scheduler = None
    if hp.scheduler != "none":
        scheduler, _ = timm.scheduler.create_scheduler_v2(
            optimizer,
            sched=hp.scheduler,
            num_epochs=job.epochs,
            decay_epochs=hp.decay_epochs or max(1, job.epochs // 3),
            decay_rate=hp.decay_rate,
            min_lr=hp.min_lr,
            warmup_lr=hp.warmup_lr,
            warmup_epochs=hp.warmup_epochs,
        )
    amp_enabled, amp_dtype = _amp(job, device)
    scaler = torch.amp.GradScaler(
        "cuda", enabled=amp_enabled and device.type == "cuda" and amp_dtype == torch.float16
    )

    def autocast() -> contextlib.AbstractContextManager[Any]:
        context: contextlib.AbstractContextManager[Any] = torch.autocast(
            device_type=device.type, dtype=amp_dtype, enabled=amp_enabled
        )
        return context

    amp = str(amp_dtype).removeprefix("torch.") if amp_enabled else "off"
    return optimizer, scheduler, scaler, autocast, amp


def _build(
    job: TrainJob, dist: Distributed, checkpoint: dict[str, Any] | None
) -> tuple[_Parts, int, list[dict[str, Any]], dict[str, Any] | None]:
    """Model, data and optimization, restored from ``checkpoint`` if given; returns them with
    the completed epochs, the results rows so far and the best epoch so far."""
    import timm.data
    import timm.loss
    import torch

    hp = job.hyperparameters
    data = scan_dataset(job.dataset)
    seed_everything(hp.seed)
    if checkpoint is not None:
        if tuple(checkpoint["classes"]) != data.classes:
            raise ResumeError(
                f"checkpoint {job.resume} was trained on classes {list(checkpoint['classes'])}, "
                f"the dataset has {list(data.classes)}"
            )
        architecture = str(checkpoint["architecture"])
        model = create_model(architecture, len(data.classes), hp)
        model.load_state_dict(checkpoint["model"])
    else:
        model, architecture = build_model(job.model, len(data.classes), hp)
    model.to(dist.device)
    sampler, train_loader, val_loader = _loaders(job, dist, data, model)
    optimizer, scheduler, scaler, autocast, amp = _optimization(job, model, dist.device)
    mixup = None
    if hp.mixup > 0 or hp.cutmix > 0:
        mixup = timm.data.Mixup(
            mixup_alpha=hp.mixup,
            cutmix_alpha=hp.cutmix,
            label_smoothing=hp.label_smoothing,
            num_classes=len(data.classes),
        )

    start_epoch = 0
    rows: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scaler.is_enabled() and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        same_schedule = checkpoint.get("epochs") == job.epochs
        if scheduler is not None and checkpoint.get("scheduler") and same_schedule:
            scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = int(checkpoint["epoch"])
        rows = [dict(row) for row in checkpoint.get("results") or [] if row["epoch"] <= start_epoch]
        best = dict(checkpoint["best"]) if job.best_known and checkpoint.get("best") else None

    wrapped = model
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=device_ids)
    log.info(
        "%s: %d classes, %d train / %d val images, %s x %d process(es), batch %d, amp %s",
        architecture,
        len(data.classes),
        len(data.train),
        len(data.val),
        dist.device,
        dist.world_size,
        job.batch,
        amp,
    )
    parts = _Parts(
        model=wrapped,
        bare=model,
        architecture=architecture,
        classes=data.classes,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        autocast=autocast,
        mixup=mixup,
        criterion=torch.nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing),
        mixup_criterion=timm.loss.SoftTargetCrossEntropy(),
        sampler=sampler,
        train_loader=train_loader,
        val_loader=val_loader,
        num_classes=len(data.classes),
    )
    return parts, start_epoch, rows, best


def _batches(loader: Any, device: Any) -> Iterator[tuple[Any, Any]]:
    for images, targets in loader:
        yield images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


def _train_epoch(
    parts: _Parts, job: TrainJob, stop: StopFlag, dist: Distributed
) -> tuple[float, float, float]:
    """(mean loss, images, seconds) over all ranks."""
    import torch

    hp = job.hyperparameters
    parts.model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dist.device)
    seen = 0
    started = time.monotonic()
    for batch, targets in _batches(parts.train_loader, dist.device):
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
    check_stop(stop, dist)
    seconds = time.monotonic() - started
    total_loss, total_seen, total_seconds = dist.all_sum(
        [float(loss_sum.item()), float(seen), seconds]
    )
    mean_seconds = total_seconds / dist.world_size
    return total_loss / max(total_seen, 1.0), total_seen, mean_seconds


def _validate(parts: _Parts, stop: StopFlag, dist: Distributed) -> tuple[float, float, float]:
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


def _save(job: TrainJob, parts: _Parts, epoch: int, rows: list[dict[str, Any]], best: Any) -> None:
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


def train(job: TrainJob, sink: EpochSink, stop: StopFlag, dist: Distributed) -> dict[str, float]:
    """Run the remaining epochs of ``job``; returns the final epoch's metrics plus
    ``best/epoch`` and ``best/val/top1``. Raises when stopped or on failure."""
    checkpoint = load_checkpoint(job.resume, str(job.resume)) if job.resume else None
    parts, start_epoch, rows, best = _build(job, dist, checkpoint)
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
        train_loss, images, seconds = _train_epoch(parts, job, stop, dist)
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
