"""What a project's settings refuse at submit: a priority above the caller's cap, and (with
TRAINYARD_BUDGET_EXCEEDED=refuse) a GPU job once the month's GPU-hours are used up.

Both answer 422 on the field, like the platform's other limits (jobs.service.check_limits):
the request asks for a value this caller may not have here, which is a bad value for them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.admission.priorities import ADMIN_MAX_PRIORITY, PriorityName, above
from trainyard.admission.usage import exhausted, project_gpu_hours
from trainyard.auth.models import Project
from trainyard.auth.principal import Access
from trainyard.auth.roles import Role
from trainyard.core.db import utcnow
from trainyard.core.errors import FieldError, InvalidRequest
from trainyard.core.settings import BackendSettings


def priority_cap(project: Project, role: Role | None) -> PriorityName:
    """The highest priority the caller may ask for in `project`: its admins (and platform
    admins) the highest level, members the project's `max_priority`."""
    if role is Role.ADMIN:
        return ADMIN_MAX_PRIORITY
    cap: PriorityName = project.max_priority  # type: ignore[assignment]
    return cap


def priority_refusal(project: Project, role: Role | None, priority: PriorityName) -> str | None:
    """Why the caller may not ask for `priority` in `project`; None when they may. Submit
    refuses with it, and the chat's plan card asks about it before Start."""
    cap = priority_cap(project, role)
    if not above(priority, cap):
        return None
    return (
        f"at most {cap} for you in {project.slug!r} (its admins may ask for {ADMIN_MAX_PRIORITY})"
    )


async def refuse_by_project_rules(
    session: AsyncSession,
    settings: BackendSettings,
    access: Access,
    priority: PriorityName,
    gpus: int,
) -> None:
    project = await session.get(Project, access.project)
    if project is None:  # the permit found it; gone since: the insert will say so
        return
    errors: list[FieldError] = []
    refusal = priority_refusal(project, access.principal.role_in(project.id), priority)
    if refusal is not None:
        errors.append(FieldError("priority", refusal))
    if (
        gpus > 0
        and settings.budget_exceeded == "refuse"
        and project.gpu_hours_per_month is not None
    ):
        used = await project_gpu_hours(session, project.id, utcnow())
        if exhausted(project.gpu_hours_per_month, used):
            errors.append(
                FieldError(
                    "gpus",
                    f"{project.slug!r} has used its {project.gpu_hours_per_month:g} GPU-hours "
                    "this month: ask for 0 GPUs, or ask a platform admin to raise the budget",
                )
            )
    if errors:
        raise InvalidRequest(errors)
