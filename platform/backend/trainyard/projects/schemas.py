"""Request and response bodies of projects, members, API keys, the audit trail and /v1/me."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainyard.auth.projects import SLUG_PATTERN
from trainyard.auth.roles import Role

# A name people read: no control characters (PostgreSQL refuses NUL in text, logs and
# terminals misbehave on the rest).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=SLUG_PATTERN, examples=["vision-team"])
    name: str = Field(min_length=1, max_length=200, pattern=PRINTABLE, examples=["Vision team"])


class ProjectRead(BaseModel):
    id: str
    slug: str
    name: str
    # The caller's role in it (a platform admin administers every project).
    role: Role


class ProjectPage(BaseModel):
    items: list[ProjectRead]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str | None
    name: str | None
    platform_admin: bool


class MeRead(BaseModel):
    user: UserRead
    # How this request signed in: local, oidc, session or api_key:<prefix>.
    credential: str
    projects: list[ProjectRead]
    default_project: str | None = Field(description="the slug requests act in by default")


class MemberSet(BaseModel):
    """Add a member (by user id or by the email they signed in with) or change their role."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    email: str | None = Field(default=None, max_length=320, pattern=PRINTABLE)
    role: Role


class MemberRead(BaseModel):
    user_id: str
    email: str | None
    name: str | None
    role: Role
    # direct (given here) or groups (from the IdP's groups claim).
    source: str


class MemberPage(BaseModel):
    items: list[MemberRead]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=PRINTABLE, examples=["nightly-retrain"])
    role: Role = Role.MEMBER
    # Keys expire: a forgotten key stops working by itself.
    expires_in_days: int = Field(default=90, ge=1, le=366)


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    prefix: str = Field(description="the key begins tyk_<prefix>_: how it shows in lists and logs")
    name: str
    role: Role
    user_id: str
    project_id: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the whole key: shown this once, never again")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyRead]


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    user_id: str | None
    credential: str
    project_id: str | None
    action: str
    target: str
    client: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    total: int
