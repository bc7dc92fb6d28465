"""`GET /v1/frameworks`: what each framework's job may say (for clients and the web UI)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from trainyard.auth.roles import Action
from trainyard.core.errors import SIGNED_IN_RESPONSES
from trainyard.deps import Permit
from trainyard.frameworks import models_by_framework
from trainyard.frameworks.job_create import job_create_schemas, job_defaults, job_tasks

router = APIRouter(
    prefix="/v1/frameworks",
    tags=["frameworks"],
    dependencies=[Depends(Permit(Action.READ))],
    responses=SIGNED_IN_RESPONSES,
)


class FrameworkRead(BaseModel):
    name: str
    tasks: list[str]
    defaults: dict[str, Any]
    example_models: list[str]
    # The job request body for this framework (hyperparameters included), as JSON Schema.
    job_schema: dict[str, Any]


@router.get("", response_model=list[FrameworkRead])
async def list_frameworks() -> list[FrameworkRead]:
    """Every framework Trainyard trains with: tasks, defaults, example models, request schema."""
    examples = models_by_framework()
    frameworks = []
    for name, schema in job_create_schemas().items():
        frameworks.append(
            FrameworkRead(
                name=name,
                tasks=job_tasks(name),
                defaults=job_defaults(name),
                example_models=examples[name],
                job_schema=schema,
            )
        )
    return frameworks
