"""Which project a request acts in: the one its `Trainyard-Project` header names (a slug), or
the caller's default."""

from __future__ import annotations

from sqlalchemy import select

from trainyard.auth.models import Project
from trainyard.auth.principal import Principal
from trainyard.core.db import Database
from trainyard.core.errors import NotFound

PROJECT_HEADER = "Trainyard-Project"
# A project's slug: what people type and headers carry.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ProjectNotFound(NotFound):
    code = "project_not_found"

    def __init__(self, slug: str) -> None:
        super().__init__(f"no project {slug!r} of yours")


async def named_project(db: Database, principal: Principal, slug: str | None) -> str:
    """The id of the project `slug` names (the caller's default when None); 404 for a project
    the caller is not in (whether or not it exists: no existence oracle)."""
    if slug is None:
        default = principal.default_project_id
        if default is None:
            raise NotFound("you are not a member of any project yet: ask a project admin")
        return default
    own = principal.project_by_slug(slug)
    if own is not None:
        return own.project_id
    if principal.platform_admin:
        async with db.session() as session:
            found = (
                await session.execute(select(Project.id).where(Project.slug == slug))
            ).scalar_one_or_none()
        if found is not None:
            return found
    raise ProjectNotFound(slug)
