"""The transformers ``TrainingArguments`` of an attempt.

Trainer arguments
-----------------
From the contract: ``num_train_epochs`` (TRAINYARD_EPOCHS), ``per_device_{train,eval}_batch_size``
(TRAINYARD_BATCH), the device (CPU for TRAINYARD_GPUS=0, else CUDA; several GPUs: DDP, see
trainer/distributed.py). Fixed: ``eval_strategy``/``save_strategy``/``logging_strategy`` =
``"epoch"``, ``metric_for_best_model="accuracy"`` (the Trainer's best metric, kept in its
state), ``report_to="none"``, ``disable_tqdm=True``. From TRAINYARD_HYPERPARAMETERS:
learning_rate, weight_decay, warmup_ratio (as ``warmup_steps`` < 1), lr_scheduler_type, optim,
gradient_accumulation_steps, fp16, bf16, dataloader_num_workers, seed, label_smoothing_factor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.settings import TrainerSettings


def training_arguments(settings: TrainerSettings, folder: Path, device: str) -> Any:
    from transformers import TrainingArguments

    from trainer.distributed import PROCESS_GROUP_TIMEOUT

    hp = settings.hyperparameters
    cpu = device == "cpu"
    return TrainingArguments(
        output_dir=str(folder / ".staging"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch,
        per_device_eval_batch_size=settings.batch,
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        warmup_steps=hp.warmup_ratio,
        lr_scheduler_type=hp.lr_scheduler_type,
        optim=hp.optim,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        fp16=hp.fp16,
        bf16=hp.bf16,
        dataloader_num_workers=hp.dataloader_num_workers,
        dataloader_pin_memory=not cpu,
        seed=hp.seed,
        label_smoothing_factor=hp.label_smoothing_factor,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=None,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        load_best_model_at_end=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=cpu,
        ddp_timeout=int(PROCESS_GROUP_TIMEOUT.total_seconds()),
    )
