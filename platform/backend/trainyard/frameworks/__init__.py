"""What the backend knows about each training framework: valid models, hyperparameters and the
job request.

Adding a framework means a module here (its models, hyperparameters and `JobCreate`, a
subclass of `job_base.JobCreateBase` whose `framework` literal is the framework's name), its
entry in `_MODULES`, a trainer under `trainers/<framework>/` that honours
docs/trainer-contract.md, its image in the Helm values, and its entry in the conformance
suite's list. Everything else (the API's framework list, defaults, the planner's words) is
derived from `FRAMEWORKS`.
"""

from __future__ import annotations

from types import ModuleType
from typing import get_args

from trainyard.frameworks import huggingface, timm, ultralytics
from trainyard.frameworks.job_base import JobCreateBase

# The order settles words two frameworks know (ultralytics' and timm's names do not overlap)
# and the first is the default framework of a job request that names none.
_MODULES: tuple[ModuleType, ...] = (ultralytics, timm, huggingface)


def _name(module: ModuleType) -> str:
    job_create: type[JobCreateBase] = module.JobCreate
    name: str = get_args(job_create.model_fields["framework"].annotation)[0]
    return name


FRAMEWORKS: dict[str, ModuleType] = {_name(module): module for module in _MODULES}
DEFAULT_FRAMEWORK = next(iter(FRAMEWORKS))
JOB_CREATE_BY_FRAMEWORK: dict[str, type[JobCreateBase]] = {
    name: module.JobCreate for name, module in FRAMEWORKS.items()
}


def known_model(word: str) -> tuple[str, str] | None:
    """(framework, model) when `word` names a model a framework can train: `yolo11n.pt` as
    it is, a bare `yolo11n` as its architecture `yolo11n.yaml` (random init: no download)."""
    for name, module in FRAMEWORKS.items():
        model = module.recognise_model(word)
        if model is not None:
            return name, model
    return None


def model_examples() -> tuple[str, ...]:
    return tuple(model for module in FRAMEWORKS.values() for model in module.EXAMPLE_MODELS)


def models_by_framework() -> dict[str, list[str]]:
    return {name: list(module.EXAMPLE_MODELS) for name, module in FRAMEWORKS.items()}
