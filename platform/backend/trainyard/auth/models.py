"""Tables of identity and access: users, projects, memberships, API keys, the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.core.db import Base, PortableJSON, UTCDateTime, utcnow

# The project every row stored before projects existed belongs to (migration 0006), and the
# embedded tier's only project unless more are made.
DEFAULT_PROJECT_ID = "default"
# The issuer of users who never sign in: the embedded tier's local user.
LOCAL_ISSUER = "local"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Who vouches for the user (an OIDC issuer, or "local") and their id there: a user is
    # (issuer, subject), never an email (emails change hands).
    issuer: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # What users and URLs name it by (the Trainyard-Project header).
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Quotas (trainyard/admission); None: no limit but the platform's capacity.
    quota_gpus: Mapped[int | None] = mapped_column(Integer, default=None)
    quota_runs: Mapped[int | None] = mapped_column(Integer, default=None)
    gpu_hours_per_month: Mapped[float | None] = mapped_column(Float, default=None)
    # The highest priority a member may ask for (trainyard/admission/priorities.py); the
    # project's admins may always ask for the highest.
    max_priority: Mapped[str] = mapped_column(String(16), default="high", server_default="high")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    # direct: given by a project admin; groups: from the IdP's groups claim (kept in step with
    # the user's tokens, never overriding a direct one).
    source: Mapped[str] = mapped_column(String(16), default="direct")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The public part of the key (`tyk_<prefix>_<secret>`): finds the row, shows in lists.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # SHA-256 of the secret part: keys are 256 random bits, so a fast hash is enough.
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Set: the key acts only in this project. Null: in every project of its user.
    project_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), default=None, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Who: a user id (null for a failed sign-in) and how they showed it ("oidc", "api_key
    # tyk_ab12cd34", "session", "local").
    user_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    credential: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    action: Mapped[str] = mapped_column(String(64))  # job.submit, api_key.create, sign_in.fail
    target: Mapped[str] = mapped_column(String(256), default="")
    # From where: the client address as the server saw it.
    client: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
