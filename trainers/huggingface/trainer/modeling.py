"""The model, its preprocessor and the torch datasets (imports transformers: call after
`trainer.environment.prepare_environment`).

``TRAINYARD_MODEL`` is either

* a **saved model folder** (``save_pretrained`` output: ``config.json``, weights, and for text a
  tokenizer; an absolute path, ``file://`` or ``s3://`` URI — the latter downloaded first),
  loaded with ``from_pretrained(local_files_only=True)``; a classification head of another size
  is replaced (``ignore_mismatched_sizes``). Its image processor is used when the folder has
  ``preprocessor_config.json`` (then TRAINYARD_IMGSZ does not apply), else the trainer's own;
  or
* a **model type** of the transformers ``AutoConfig`` registry (``vit``, ``convnext``,
  ``resnet`` … for images; ``bert``, ``distilbert``, ``roberta`` … for text), built from its
  default config plus the ``model_config`` hyperparameter with random weights. Images use a
  plain resize-to-``TRAINYARD_IMGSZ`` + normalise processor (``ViTImageProcessor``, mean/std
  0.5), and ``image_size`` is set to TRAINYARD_IMGSZ where the config has one. Text has no
  pretrained tokenizer, so a lower-cased WordPiece tokenizer (BERT-style pre-tokenisation,
  ``[PAD] [UNK] [CLS] [SEP] [MASK]``) is trained on the training texts with the ``tokenizers``
  library — at most ``vocab_size`` tokens, fewer when the texts hold fewer — and
  ``vocab_size``/``pad_token_id`` of the config follow it.

The tokenizer or image processor is the Trainer's ``processing_class``, so it is saved into
every checkpoint and into the final model folder: both load with ``Auto*.from_pretrained``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trainer.dataset import LoadedData
from trainer.settings import IMAGE_CLASSIFICATION, Hyperparameters

log = logging.getLogger("trainyard.trainer.modeling")

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


class ModelError(ValueError):
    """TRAINYARD_MODEL names nothing usable for the task."""


# -- datasets -----------------------------------------------------------------------------------


class ImageClassificationDataset(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, records: Sequence[tuple[str, int]], processor: Any) -> None:
        self._records = list(records)
        self._processor = processor

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self._records[index]
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        pixels = self._processor(images=rgb, return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixels, "labels": label}


class TextClassificationDataset(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, records: Sequence[tuple[str, int]], tokenizer: Any, max_length: int) -> None:
        self._records = list(records)
        self._tokenizer = tokenizer
        self._max_length = max_length

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        text, label = self._records[index]
        encoded = self._tokenizer(text, truncation=True, max_length=self._max_length)
        return {**dict(encoded), "labels": label}


@dataclass
class Built:
    model: Any
    processor: Any  # tokenizer or image processor: the Trainer's processing_class
    train_dataset: Any
    eval_dataset: Any
    collator: Any


# -- metrics ------------------------------------------------------------------------------------


def classification_metrics(predictions: Any, labels: Any) -> dict[str, float]:
    """Accuracy and macro F1 (over the classes present in labels or predictions)."""
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    predicted = np.asarray(logits).argmax(axis=-1)
    truth = np.asarray(labels)
    accuracy = float((predicted == truth).mean()) if truth.size else 0.0
    scores = []
    for cls in np.union1d(truth, predicted):
        tp = float(np.sum((predicted == cls) & (truth == cls)))
        fp = float(np.sum((predicted == cls) & (truth != cls)))
        fn = float(np.sum((predicted != cls) & (truth == cls)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": accuracy, "f1": float(np.mean(scores)) if scores else 0.0}


def compute_metrics(eval_prediction: Any) -> dict[str, float]:
    return classification_metrics(eval_prediction.predictions, eval_prediction.label_ids)


# -- tokenizer ----------------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int, target: Path) -> Path:
    """Train a WordPiece tokenizer on ``texts`` and save it (transformers format) to
    ``target``; returns ``target``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers as tokenizer_trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = tokenizer_trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
    target.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(target))
    log.info("trained a WordPiece tokenizer of %d tokens on %d texts", len(wrapped), len(texts))
    return target


# -- model --------------------------------------------------------------------------------------


def _labels(classes: Sequence[str]) -> dict[str, Any]:
    return {
        "id2label": dict(enumerate(classes)),
        "label2id": {name: i for i, name in enumerate(classes)},
    }


def default_image_processor(imgsz: int) -> Any:
    from transformers import ViTImageProcessor

    return ViTImageProcessor(
        size={"height": imgsz, "width": imgsz},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )


def check_model_type(model_type: str, task: str) -> None:
    """Raise `ModelError` unless ``model_type`` has a head for ``task``."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    heads = (
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
        if task == IMAGE_CLASSIFICATION
        else MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    )
    examples = "vit, convnext, resnet" if task == IMAGE_CLASSIFICATION else "bert, distilbert"
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelError(
            f"TRAINYARD_MODEL {model_type!r} is neither a saved model folder nor a transformers "
            f"model type (e.g. {examples})"
        )
    if model_type not in heads:
        raise ModelError(
            f"TRAINYARD_MODEL {model_type!r} has no {task} head in transformers (e.g. {examples})"
        )


def _from_type_config(
    model_type: str, overrides: dict[str, Any], fixed: dict[str, Any], imgsz: int | None
) -> Any:
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    defaults = CONFIG_MAPPING[model_type]()
    extra: dict[str, Any] = {}
    if imgsz is not None and hasattr(defaults, "image_size") and "image_size" not in overrides:
        extra["image_size"] = imgsz
    try:
        return AutoConfig.for_model(model_type, **{**extra, **overrides, **fixed})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model_config {overrides} does not fit {model_type!r}: {exc}") from exc


def load_folder_model(
    folder: Path, task: str, classes: Sequence[str], overrides: dict[str, Any]
) -> Any:
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model folder has no config.json: {folder}")
    auto = (
        AutoModelForImageClassification
        if task == IMAGE_CLASSIFICATION
        else AutoModelForSequenceClassification
    )
    return auto.from_pretrained(
        str(folder),
        local_files_only=True,
        ignore_mismatched_sizes=True,
        **{**overrides, **_labels(classes)},
    )


def build(
    data: LoadedData,
    hp: Hyperparameters,
    imgsz: int,
    *,
    model_folder: Path | None,
    model_type: str | None,
    tokenizer_folder: Callable[[], Path] | None = None,
    restored: bool = False,
) -> Built:
    """Model, preprocessor, datasets and collator. ``model_folder`` (a saved model or the
    restored checkpoint) or ``model_type`` names the model; ``tokenizer_folder`` trains (or
    waits for) the tokenizer of a text model built from a type."""
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        default_data_collator,
    )

    # A restored checkpoint's config.json already holds the overrides it was built with.
    overrides = {} if restored else dict(hp.model_config_overrides)
    if data.task == IMAGE_CLASSIFICATION:
        if model_folder is not None:
            model = load_folder_model(model_folder, data.task, data.classes, overrides)
            if (model_folder / "preprocessor_config.json").is_file():
                processor = AutoImageProcessor.from_pretrained(
                    str(model_folder), local_files_only=True
                )
            else:
                processor = default_image_processor(imgsz)
        else:
            assert model_type is not None
            check_model_type(model_type, data.task)
            config = _from_type_config(model_type, overrides, _labels(data.classes), imgsz)
            model = AutoModelForImageClassification.from_config(config)
            processor = default_image_processor(imgsz)
        return Built(
            model=model,
            processor=processor,
            train_dataset=ImageClassificationDataset(data.train, processor),
            eval_dataset=ImageClassificationDataset(data.val, processor),
            collator=default_data_collator,
        )

    if model_folder is not None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            message = " ".join(str(exc).split())[:300]
            raise FileNotFoundError(
                f"model folder has no usable tokenizer: {model_folder} ({message})"
            ) from exc
        model = load_folder_model(model_folder, data.task, data.classes, overrides)
    else:
        assert model_type is not None
        assert tokenizer_folder is not None
        check_model_type(model_type, data.task)
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder()), local_files_only=True)
        fixed = {
            **_labels(data.classes),
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
        }
        config = _from_type_config(model_type, overrides, fixed, None)
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions < hp.max_length + 2:
            config.max_position_embeddings = hp.max_length + 2
        model = AutoModelForSequenceClassification.from_config(config)
    limit = tokenizer.model_max_length if 0 < tokenizer.model_max_length < 1_000_000 else None
    max_length = min(hp.max_length, limit) if limit else hp.max_length
    return Built(
        model=model,
        processor=tokenizer,
        train_dataset=TextClassificationDataset(data.train, tokenizer, max_length),
        eval_dataset=TextClassificationDataset(data.val, tokenizer, max_length),
        collator=DataCollatorWithPadding(tokenizer),
    )
