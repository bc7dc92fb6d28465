"""Projects, members, API keys and the audit trail. Every check goes through `Access.allows`
(trainyard.auth.roles decides who may do what); every change is audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth import audit
from trainyard.auth.api_keys import NewApiKey, make_api_key
from trainyard.auth.models import ApiKey, AuditEvent, Membership, Project, User
from trainyard.auth.principal import Access, Principal
from trainyard.auth.projects import ProjectNotFound
from trainyard.auth.roles import Role, weaker
from trainyard.core.db import utcnow
from trainyard.core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from trainyard.projects.schemas import (
    ApiKeyCreate,
    MemberRead,
    MemberSet,
    ProjectCreate,
    ProjectRead,
)


class PlatformAdminOnly(Forbidden):
    code = "platform_admin_only"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key {key_id!r} of yours")


def require_platform_admin(principal: Principal) -> None:
    if not principal.platform_admin:
        raise PlatformAdminOnly("only a platform admin may do this")


async def project_for(session: AsyncSession, access: Access, slug: str) -> Project:
    """The project `slug` names, if the caller may perform `access.action` there (404 when
    they are not in it, 403 when their role is too weak)."""
    project = (
        await session.execute(select(Project).where(Project.slug == slug))
    ).scalar_one_or_none()
    if project is None or not access.allows(project.id):
        raise ProjectNotFound(slug)
    return project


async def visible_projects(session: AsyncSession, principal: Principal) -> list[ProjectRead]:
    query = select(Project).order_by(Project.slug)
    if not principal.platform_admin:
        query = query.where(Project.id.in_(list(principal.projects)))
    return [
        ProjectRead(id=p.id, slug=p.slug, name=p.name, role=principal.role_in(p.id) or Role.VIEWER)
        for p in (await session.execute(query)).scalars()
    ]


async def create_project(session: AsyncSession, access: Access, body: ProjectCreate) -> Project:
    """A platform admin makes a project and administers it."""
    require_platform_admin(access.principal)
    project = Project(id=f"prj_{uuid.uuid4().hex}", slug=body.slug, name=body.name)
    session.add(project)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a project {body.slug!r} exists already") from exc
    session.add(Membership(project_id=project.id, user_id=access.user_id, role=Role.ADMIN))
    audit.record(
        session, access.principal, "project.create", project_id=project.id, target=body.slug
    )
    return project


async def members(session: AsyncSession, project: Project) -> list[MemberRead]:
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project.id)
        .order_by(User.email, User.id)
    )
    return [
        MemberRead(
            user_id=user.id,
            email=user.email,
            name=user.name,
            role=Role(membership.role),
            source=membership.source,
        )
        for membership, user in (await session.execute(query)).all()
    ]


async def set_member(
    session: AsyncSession, access: Access, project: Project, body: MemberSet
) -> MemberRead:
    """Add a user who has signed in once (by id or email), or change their role."""
    if (body.user_id is None) == (body.email is None):
        raise InvalidRequest.on("user_id", "give user_id or email (one of them)")
    query = select(User).where(
        User.id == body.user_id if body.user_id is not None else User.email == body.email
    )
    user = (await session.execute(query)).scalars().first()
    if user is None:
        raise NotFound("no such user: they appear once they have signed in")
    membership = await session.get(Membership, (project.id, user.id))
    if membership is None:
        membership = Membership(project_id=project.id, user_id=user.id, role=body.role)
        session.add(membership)
    else:
        membership.role, membership.source = body.role, "direct"
    audit.record(
        session,
        access.principal,
        "member.set",
        project_id=project.id,
        target=user.id,
        detail={"role": body.role.value},
    )
    return MemberRead(
        user_id=user.id, email=user.email, name=user.name, role=body.role, source="direct"
    )


async def remove_member(
    session: AsyncSession, access: Access, project: Project, user_id: str
) -> None:
    membership = await session.get(Membership, (project.id, user_id))
    if membership is None:
        raise NotFound(f"{user_id!r} is not a member of {project.slug!r}")
    await session.delete(membership)
    audit.record(session, access.principal, "member.remove", project_id=project.id, target=user_id)


async def create_api_key(
    session: AsyncSession, access: Access, project: Project | None, body: ApiKeyCreate
) -> NewApiKey:
    """A key for the caller: for one project (its admins make those) or for all of theirs.
    Never with a role stronger than the caller's own there."""
    if project is not None:
        own = access.principal.role_in(project.id) or Role.VIEWER
        if weaker(body.role, own) != body.role:
            raise InvalidRequest.on("role", f"at most your own role in {project.slug!r} ({own})")
    expires_at = utcnow() + timedelta(days=body.expires_in_days)
    made = make_api_key(
        access.user_id, project.id if project else None, body.role, body.name, expires_at
    )
    session.add(made.row)
    await session.flush()
    audit.record(
        session,
        access.principal,
        "api_key.create",
        project_id=project.id if project else None,
        target=made.row.id,
        detail={"name": body.name, "role": body.role.value, "prefix": made.row.prefix},
    )
    return made


async def api_keys(
    session: AsyncSession, *, project: Project | None = None, user_id: str | None = None
) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at.desc())
    if project is not None:
        query = query.where(ApiKey.project_id == project.id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id, ApiKey.project_id.is_(None))
    return list((await session.execute(query)).scalars())


async def revoke_api_key(
    session: AsyncSession, access: Access, key_id: str, project: Project | None
) -> ApiKey:
    """Revoke a project's key (its admins) or one of the caller's own keys."""
    key = await session.get(ApiKey, key_id)
    mine = key is not None and key.user_id == access.user_id and key.project_id is None
    in_project = key is not None and project is not None and key.project_id == project.id
    if key is None or not (mine or in_project):
        raise ApiKeyNotFound(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(
            session,
            access.principal,
            "api_key.revoke",
            project_id=key.project_id,
            target=key.id,
            detail={"prefix": key.prefix},
        )
    return key


async def audit_events(
    session: AsyncSession, project: Project | None, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    """Newest first: a project's events, or every event (platform admins)."""
    conditions = [AuditEvent.project_id == project.id] if project is not None else []
    total = await session.execute(select(func.count()).select_from(AuditEvent).where(*conditions))
    query = (
        select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).scalars()), int(total.scalar_one())
