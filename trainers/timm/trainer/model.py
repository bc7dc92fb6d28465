"""The timm model: built from a timm model name or a local weights file, never downloaded.

* ``TRAINYARD_MODEL=<timm name>`` (e.g. ``resnet18``, ``vit_tiny_patch16_224``,
  ``resnet50.a1_in1k``): ``timm.create_model(name, pretrained=False, num_classes=<classes>)``,
  random init; with the ``pretrained_path`` hyperparameter, that state dict is loaded on top.
* ``TRAINYARD_MODEL=/abs/weights.pt`` (or ``file:///…``): the architecture is the one stored in
  the file (this trainer's ``best.pt``/``last.pt``) or the ``architecture`` hyperparameter.

Weights files: this trainer's checkpoints, a plain state dict (``.pt``/``.pth``/``.bin``, read
with ``torch.load(weights_only=True)``; ``{"state_dict": …}``/``{"model": …}`` wrappers and
``module.`` prefixes accepted) or ``.safetensors``. Tensors whose shape does not fit the model —
the classifier head when the class count differs — are left out, so the head stays freshly
initialised; any other mismatch (a different architecture) is an error.

An unknown model name only shows at run time (the backend validates names up front): the
attempt fails with ``UnknownModelError: unknown timm model 'x'``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.resume import FORMAT
from trainer.settings import Hyperparameters, local_path

log = logging.getLogger("trainyard.trainer.model")


class UnknownModelError(ValueError):
    """TRAINYARD_MODEL (or the architecture hyperparameter) names no timm model."""


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model."""


def read_weights(path: Path) -> tuple[dict[str, Any], str | None]:
    """The state dict in ``path`` and the architecture stored with it, if any."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu")), None
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        message = " ".join(str(exc).split())[:300]
        raise WeightsError(
            f"weights file {path} is unreadable: {type(exc).__name__}: {message}"
        ) from exc
    architecture: str | None = None
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        architecture = str(loaded["architecture"])
        loaded = loaded["model"]
    elif isinstance(loaded, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise WeightsError(f"weights file {path} holds no state dict")
    state = {k.removeprefix("module."): v for k, v in loaded.items()}
    return state, architecture


def load_weights(model: Any, state: Mapping[str, Any], source: str) -> list[str]:
    """Load ``state`` into ``model``, leaving out tensors whose shape differs (the head);
    returns the names left out. Raises WeightsError when anything else does not fit."""
    own = model.state_dict()
    skipped = sorted(
        key for key, value in state.items() if key in own and own[key].shape != value.shape
    )
    result = model.load_state_dict(
        {k: v for k, v in state.items() if k not in skipped}, strict=False
    )
    missing = sorted(set(result.missing_keys) - set(skipped))
    unexpected = sorted(result.unexpected_keys)
    if missing or unexpected:
        raise WeightsError(
            f"weights {source} do not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    if skipped:
        log.info("weights %s: re-initialised %s (shape differs)", source, ", ".join(skipped))
    return skipped


def resolve_model(spec: str, hp: Hyperparameters) -> tuple[str, Path | None]:
    """(timm model name, weights file or None) for TRAINYARD_MODEL ``spec``."""
    path = local_path(spec)
    if path is None:
        weights = local_path(hp.pretrained_path) if hp.pretrained_path else None
        return spec, weights
    if hp.pretrained_path:
        raise ValueError(
            "TRAINYARD_MODEL is a weights file already; the pretrained_path hyperparameter "
            "would load a second one"
        )
    if hp.architecture:
        return hp.architecture, path
    _, architecture = read_weights(path)
    if architecture is None:
        raise WeightsError(
            f"weights file {path} does not say its architecture: set the 'architecture' "
            "hyperparameter to its timm model name"
        )
    return architecture, path


def create_model(name: str, num_classes: int, hp: Hyperparameters) -> Any:
    """``timm.create_model(name, pretrained=False, …)``, random init."""
    import timm

    if not timm.is_model(name):
        raise UnknownModelError(f"unknown timm model {name!r}")
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": hp.drop_rate}
    if hp.drop_path_rate > 0:
        kwargs["drop_path_rate"] = hp.drop_path_rate
    return timm.create_model(name, pretrained=False, **kwargs)


def build_model(spec: str, num_classes: int, hp: Hyperparameters) -> tuple[Any, str]:
    """The model for TRAINYARD_MODEL ``spec`` with ``num_classes`` outputs, and its name."""
    name, weights = resolve_model(spec, hp)
    model = create_model(name, num_classes, hp)
    if weights is not None:
        state, _ = read_weights(weights)
        load_weights(model, state, str(weights))
        log.info("loaded weights %s into %s", weights, name)
    return model, name
