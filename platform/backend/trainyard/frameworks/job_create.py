"""A job request parsed as its framework's model, and each framework's request facts."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError, create_model
from pydantic_core import InitErrorDetails, PydanticCustomError

from trainyard.frameworks import DEFAULT_FRAMEWORK, JOB_CREATE_BY_FRAMEWORK
from trainyard.frameworks.job_base import JobCreateBase

# The framework names as a literal type, built from the registry (Any: made at run time).
_FRAMEWORK_NAME: Any = Literal[tuple(JOB_CREATE_BY_FRAMEWORK)]
# Only used to word the error for an unknown framework like any other literal field.
_FrameworkOnly: type[BaseModel] = create_model(
    "_FrameworkOnly", framework=(_FRAMEWORK_NAME, DEFAULT_FRAMEWORK)
)


def parse_job_create(data: Any) -> JobCreateBase:
    """The framework's job model for `data` (`framework` defaults to the first framework);
    raises pydantic.ValidationError with the same field paths as a plain model would (no union
    tag)."""
    framework = data.get("framework", DEFAULT_FRAMEWORK) if isinstance(data, dict) else None
    model = JOB_CREATE_BY_FRAMEWORK.get(framework) if isinstance(framework, str) else None
    if model is None:
        # Raises the error naming `framework` (or the body, when it is not an object).
        _FrameworkOnly.model_validate(data)
        raise AssertionError("unreachable: a known framework has a job model")
    job = model.model_validate(data)
    problems = job.field_problems()
    if problems:
        raise ValidationError.from_exception_data(
            model.__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError(
                        "value_error", "Value error, {reason}", {"reason": why}
                    ),
                    loc=(field,),
                    input=getattr(job, field),
                )
                for field, why in problems.items()
            ],
        )
    return job


def job_defaults(framework: str) -> dict[str, Any]:
    """The defaults of a framework's job (task, epochs, imgsz, batch, gpus)."""
    model = JOB_CREATE_BY_FRAMEWORK[framework]
    return {
        name: model.model_fields[name].default
        for name in ("task", "epochs", "imgsz", "batch", "gpus")
    }


def job_tasks(framework: str) -> list[str]:
    """The tasks a framework's job may name, its default first."""
    field = JOB_CREATE_BY_FRAMEWORK[framework].model_fields["task"]
    return sorted(get_args(field.annotation), key=lambda task: task != field.default)


def job_create_schemas() -> dict[str, dict[str, Any]]:
    """Each framework's request body as JSON Schema (for `GET /v1/frameworks`)."""
    return {name: model.model_json_schema() for name, model in JOB_CREATE_BY_FRAMEWORK.items()}
