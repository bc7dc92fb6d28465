"""Users and their memberships: found (or made, at first sign-in) by issuer + subject."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.models import DEFAULT_PROJECT_ID, LOCAL_ISSUER, Membership, Project, User
from trainyard.auth.principal import ProjectRole
from trainyard.auth.roles import Role


def new_user_id() -> str:
    return f"usr_{uuid.uuid4().hex}"


async def find_user(session: AsyncSession, issuer: str, subject: str) -> User | None:
    query = select(User).where(User.issuer == issuer, User.subject == subject)
    return (await session.execute(query)).scalar_one_or_none()


async def project_roles(session: AsyncSession, user_id: str) -> dict[str, ProjectRole]:
    query = (
        select(Membership.project_id, Project.slug, Membership.role)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user_id)
    )
    return {
        project_id: ProjectRole(project_id, slug, Role(role))
        for project_id, slug, role in (await session.execute(query)).all()
    }


async def ensure_local_user(session: AsyncSession, name: str) -> User:
    """The embedded tier's user: a platform admin who administers the default project (made
    here when the migration did not, e.g. for a `TRAINYARD_OWNER` it never saw)."""
    user = await find_user(session, LOCAL_ISSUER, name)
    if user is None:
        user = User(id=name, issuer=LOCAL_ISSUER, subject=name, name=name, platform_admin=True)
        session.add(user)
    if await session.get(Project, DEFAULT_PROJECT_ID) is None:
        session.add(Project(id=DEFAULT_PROJECT_ID, slug="default", name="Default"))
    await session.flush()
    if await session.get(Membership, (DEFAULT_PROJECT_ID, user.id)) is None:
        session.add(Membership(project_id=DEFAULT_PROJECT_ID, user_id=user.id, role=Role.ADMIN))
    return user


async def ensure_oidc_user(
    session: AsyncSession,
    issuer: str,
    subject: str,
    email: str | None,
    name: str | None,
    platform_admin: bool,
) -> User:
    """The user behind a verified token; made at their first sign-in (no invitation step:
    a user without a membership sees nothing until an admin adds them or a group maps them)."""
    user = await find_user(session, issuer, subject)
    if user is None:
        user = User(
            id=new_user_id(),
            issuer=issuer,
            subject=subject,
            email=email,
            name=name,
            platform_admin=platform_admin,
        )
        session.add(user)
        await session.flush()
    elif (user.email, user.name, user.platform_admin) != (email, name, platform_admin):
        user.email, user.name, user.platform_admin = email, name, platform_admin
    return user


async def sync_group_memberships(
    session: AsyncSession, user_id: str, wanted: Mapping[str, Role]
) -> None:
    """Make the user's group-given memberships exactly `wanted` (project slug -> role). A
    direct membership (given by a project admin) is never changed or removed here; a project
    a group names is made when it does not exist yet."""
    query = (
        select(Membership, Project.slug)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user_id)
    )
    current = {slug: membership for membership, slug in (await session.execute(query)).all()}
    for slug, membership in current.items():
        if membership.source == "groups" and slug not in wanted:
            await session.delete(membership)
    for slug, role in wanted.items():
        existing = current.get(slug)
        if existing is None:
            project = (
                await session.execute(select(Project).where(Project.slug == slug))
            ).scalar_one_or_none()
            if project is None:
                project = Project(id=f"prj_{uuid.uuid4().hex}", slug=slug, name=slug)
                session.add(project)
                await session.flush()
            session.add(
                Membership(project_id=project.id, user_id=user_id, role=role, source="groups")
            )
        elif existing.source == "groups" and existing.role != role:
            existing.role = role


async def find_user_by_id(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:  # a principal is made from a stored user: only a deletion races this
        raise LookupError(f"user {user_id} vanished")
    return user
