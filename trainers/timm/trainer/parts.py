"""Everything the epochs need, built once: the timm model (restored from a checkpoint when
resuming), the data loaders with timm's transforms, optimizer, LR schedule, AMP and mixup."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer_kit.resume import ResumeError

from trainer.dataset import ImageFolder, ImageList, scan_dataset
from trainer.job import TrainJob
from trainer.model import build_model, create_model
from trainer.ranks import Distributed

log = logging.getLogger("trainyard.trainer.engine")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Parts:
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


def build_parts(
    job: TrainJob, dist: Distributed, checkpoint: dict[str, Any] | None
) -> tuple[Parts, int, list[dict[str, Any]], dict[str, Any] | None]:
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
    parts = Parts(
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
