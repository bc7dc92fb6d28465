"""Projects, members, API keys, the audit trail and who you are: /v1/me, /v1/projects, /v1/audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from trainyard.admission import quotas
from trainyard.admission.schemas import QuotaRead, QuotaSet
from trainyard.auth.models import ApiKey, AuditEvent
from trainyard.auth.users import find_user_by_id
from trainyard.core.errors import SIGNED_IN_RESPONSES, error_responses
from trainyard.deps import CanManage, CanRead, SessionDep
from trainyard.jobs.models import MAX_INT_COLUMN
from trainyard.projects import service
from trainyard.projects.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRead,
    AuditEventRead,
    AuditPage,
    MemberPage,
    MemberRead,
    MemberSet,
    MeRead,
    ProjectCreate,
    ProjectPage,
    ProjectRead,
    UserRead,
)
from trainyard.runtime import runtime_of

router = APIRouter(prefix="/v1", tags=["projects"], responses=SIGNED_IN_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT_COLUMN)]


def _key_page(keys: list[ApiKey]) -> ApiKeyPage:
    return ApiKeyPage(items=[ApiKeyRead.model_validate(key) for key in keys])


def _audit_page(events: list[AuditEvent], total: int) -> AuditPage:
    return AuditPage(items=[AuditEventRead.model_validate(e) for e in events], total=total)


@router.get("/me", response_model=MeRead, responses=error_responses(401))
async def me(session: SessionDep, access: CanRead) -> MeRead:
    """Who you are, how you signed in, and your projects with your role in each."""
    principal = access.principal
    user = await find_user_by_id(session, principal.user_id)
    projects = await service.visible_projects(session, principal)
    default = principal.default_project_id
    return MeRead(
        user=UserRead.model_validate(user),
        credential=principal.credential,
        projects=projects,
        default_project=next((p.slug for p in projects if p.id == default), None),
    )


@router.get("/projects", response_model=ProjectPage, responses=error_responses(401))
async def list_projects(session: SessionDep, access: CanRead) -> ProjectPage:
    """Your projects (every project, for a platform admin)."""
    return ProjectPage(items=await service.visible_projects(session, access.principal))


@router.post(
    "/projects",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectRead,
    responses=error_responses(400, 401, 403, 409, 422),
)
async def create_project(
    body: ProjectCreate, session: SessionDep, access: CanManage
) -> ProjectRead:
    """Make a project (platform admins); you become its admin."""
    project = await service.create_project(session, access, body)
    return ProjectRead(id=project.id, slug=project.slug, name=project.name, role="admin")


@router.get(
    "/projects/{slug}/members", response_model=MemberPage, responses=error_responses(401, 404)
)
async def list_members(slug: str, session: SessionDep, access: CanRead) -> MemberPage:
    project = await service.project_for(session, access, slug)
    return MemberPage(items=await service.members(session, project))


@router.put(
    "/projects/{slug}/members",
    response_model=MemberRead,
    responses=error_responses(400, 401, 403, 404, 422),
)
async def set_member(
    slug: str, body: MemberSet, session: SessionDep, access: CanManage
) -> MemberRead:
    """Add a member or change their role (project admins)."""
    project = await service.project_for(session, access, slug)
    return await service.set_member(session, access, project, body)


@router.delete(
    "/projects/{slug}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404),
)
async def remove_member(slug: str, user_id: str, session: SessionDep, access: CanManage) -> None:
    project = await service.project_for(session, access, slug)
    await service.remove_member(session, access, project, user_id)


@router.get(
    "/projects/{slug}/api-keys", response_model=ApiKeyPage, responses=error_responses(401, 403, 404)
)
async def list_project_keys(slug: str, session: SessionDep, access: CanManage) -> ApiKeyPage:
    project = await service.project_for(session, access, slug)
    return _key_page(await service.api_keys(session, project=project))


@router.post(
    "/projects/{slug}/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(400, 401, 403, 404, 422),
)
async def create_project_key(
    slug: str, body: ApiKeyCreate, session: SessionDep, access: CanManage
) -> ApiKeyCreated:
    """A key that acts in this project only, with `role` at most (shown once)."""
    project = await service.project_for(session, access, slug)
    made = await service.create_api_key(session, access, project, body)
    return ApiKeyCreated(**ApiKeyRead.model_validate(made.row).model_dump(), key=made.secret)


@router.delete(
    "/projects/{slug}/api-keys/{key_id}",
    response_model=ApiKeyRead,
    responses=error_responses(401, 403, 404),
)
async def revoke_project_key(
    slug: str, key_id: str, session: SessionDep, access: CanManage
) -> ApiKeyRead:
    project = await service.project_for(session, access, slug)
    return ApiKeyRead.model_validate(await service.revoke_api_key(session, access, key_id, project))


@router.get(
    "/projects/{slug}/audit", response_model=AuditPage, responses=error_responses(401, 403, 404)
)
async def project_audit(
    slug: str, session: SessionDep, access: CanManage, limit: Limit = 100, offset: Offset = 0
) -> AuditPage:
    """The project's audit trail, newest first (project admins)."""
    project = await service.project_for(session, access, slug)
    return _audit_page(*await service.audit_events(session, project, limit, offset))


@router.get("/projects/{slug}/quota", response_model=QuotaRead, responses=error_responses(401, 404))
async def read_quota(slug: str, session: SessionDep, access: CanRead) -> QuotaRead:
    """The project's quota, what it holds now and its GPU-hours this month (UTC)."""
    project = await service.project_for(session, access, slug)
    return await quotas.read_quota(session, project)


@router.put(
    "/projects/{slug}/quota",
    response_model=QuotaRead,
    responses=error_responses(400, 401, 403, 404, 422),
)
async def set_quota(
    slug: str, body: QuotaSet, session: SessionDep, access: CanManage, request: Request
) -> QuotaRead:
    """Set the project's GPUs, runs, monthly GPU-hours and members' highest priority
    (platform admins); queued jobs get an admission pass once it is stored."""
    service.require_platform_admin(access.principal)
    project = await service.project_for(session, access, slug)
    return await quotas.set_quota(session, access, project, body, runtime_of(request).admission)


@router.get("/me/api-keys", response_model=ApiKeyPage, responses=error_responses(401))
async def list_my_keys(session: SessionDep, access: CanRead) -> ApiKeyPage:
    """Your own keys (those that act in all your projects)."""
    return _key_page(await service.api_keys(session, user_id=access.user_id))


@router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(400, 401, 422),
)
async def create_my_key(body: ApiKeyCreate, session: SessionDep, access: CanRead) -> ApiKeyCreated:
    """A key that acts as you in each of your projects, never above `role` nor your role
    there (shown once)."""
    made = await service.create_api_key(session, access, None, body)
    return ApiKeyCreated(**ApiKeyRead.model_validate(made.row).model_dump(), key=made.secret)


@router.delete(
    "/me/api-keys/{key_id}", response_model=ApiKeyRead, responses=error_responses(401, 404)
)
async def revoke_my_key(key_id: str, session: SessionDep, access: CanRead) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await service.revoke_api_key(session, access, key_id, None))


@router.get("/audit", response_model=AuditPage, responses=error_responses(401, 403))
async def platform_audit(
    session: SessionDep, access: CanManage, limit: Limit = 100, offset: Offset = 0
) -> AuditPage:
    """Every audit event, newest first (platform admins): sign-in failures included."""
    service.require_platform_admin(access.principal)
    return _audit_page(*await service.audit_events(session, None, limit, offset))
