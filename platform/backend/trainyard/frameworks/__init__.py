"""What the backend knows about each training framework: valid models and hyperparameters.

Adding a framework means a module here (models, hyperparameters), a job model in
`jobs.schemas`, a trainer under `trainers/<framework>/` that honours docs/trainer-contract.md,
its image in the Helm values, and its entry in the conformance suite's list.
"""

from __future__ import annotations

from trainyard.frameworks import huggingface, timm, ultralytics

# Each framework's reader of a model word and its example models, for the planner; the
# order settles words two frameworks know (ultralytics' and timm's names do not overlap).
_FRAMEWORKS = {"ultralytics": ultralytics, "timm": timm, "huggingface": huggingface}


def known_model(word: str) -> tuple[str, str] | None:
    """(framework, model) when `word` names a model a framework can train: `yolo11n.pt` as
    it is, a bare `yolo11n` as its architecture `yolo11n.yaml` (random init: no download)."""
    for name, module in _FRAMEWORKS.items():
        model = module.recognise_model(word)
        if model is not None:
            return name, model
    return None


def model_examples() -> tuple[str, ...]:
    return tuple(model for module in _FRAMEWORKS.values() for model in module.EXAMPLE_MODELS)


def models_by_framework() -> dict[str, list[str]]:
    return {name: list(module.EXAMPLE_MODELS) for name, module in _FRAMEWORKS.items()}
