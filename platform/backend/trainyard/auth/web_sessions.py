"""The web UI's sessions and the WebSocket stream tickets: tables and the session store.

The browser holds `__Host-trainyard_session`, 256 random bits; the table holds only its
SHA-256 (`id`), so a database dump signs nobody in. A session ends at `expires_at` (its
sign-in plus `session_lifetime_s`, never extended) or when its user signs out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from trainyard.auth.models import Membership, Project, User
from trainyard.auth.principal import ProjectRole
from trainyard.auth.roles import Role
from trainyard.core.db import Base, PortableJSON, UTCDateTime, utcnow
from trainyard.core.errors import Unauthorized

# __Host-: the browser keeps it only when Secure, Path=/ and without Domain, so no sibling
# subdomain can plant or overwrite it.
SESSION_COOKIE = "__Host-trainyard_session"
# Recording every request would make each one a write; once a minute says enough.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


class WebSession(Base):
    __tablename__ = "web_sessions"

    # SHA-256 (hex) of the cookie's value; the value itself is never stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The IdP's groups at sign-in (the memberships they give were synced then).
    groups: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StreamTicket(Base):
    __tablename__ = "stream_tickets"

    # SHA-256 (hex) of the ticket; the ticket itself is never stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The one stream it opens (the route's `job_id`). No foreign key: a ticket outlives
    # nothing (seconds), and identity tables do not depend on the jobs' schema.
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class InvalidSession(Unauthorized):
    """401: the session cookie names no live session (unknown, tampered, expired, signed out)."""

    code = "invalid_session"


@dataclass(frozen=True)
class SessionUser:
    """Who a session cookie signs in, with their project roles, read in one query."""

    user: User
    projects: dict[str, ProjectRole]
    groups: tuple[str, ...]


def digest(secret: str) -> str:
    """How a cookie or ticket is stored: 256 random bits need no slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def open_session(
    session: AsyncSession, user_id: str, groups: list[str], lifetime_s: int
) -> str:
    """A new session for `user_id`; returns the cookie's value (shown to the browser only).
    The user's expired sessions are deleted on the way (housekeeping without a sweeper)."""
    now = utcnow()
    await session.execute(
        delete(WebSession).where(WebSession.user_id == user_id, WebSession.expires_at <= now)
    )
    value = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=digest(value),
            user_id=user_id,
            groups=list(groups),
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_s),
            last_seen_at=now,
        )
    )
    return value


async def find_session(session: AsyncSession, value: str) -> SessionUser:
    """The user a session cookie signs in and their roles (one query); InvalidSession (401)
    when it names no live session. The message never repeats the cookie."""
    query = (
        select(WebSession, User, Membership.project_id, Project.slug, Membership.role)
        .join(User, User.id == WebSession.user_id)
        .outerjoin(Membership, Membership.user_id == User.id)
        .outerjoin(Project, Project.id == Membership.project_id)
        .where(WebSession.id == digest(value))
    )
    rows = (await session.execute(query)).all()
    if not rows:
        raise InvalidSession("the session is unknown or was signed out; sign in again")
    row, user = rows[0][0], rows[0][1]
    now = utcnow()
    if row.expires_at <= now:
        # The row stays until the user's next sign-in deletes it (a raise rolls back anyway).
        raise InvalidSession("the session has expired; sign in again")
    if now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        row.last_seen_at = now
    projects = {
        project_id: ProjectRole(project_id, slug, Role(role))
        for _, _, project_id, slug, role in rows
        if project_id is not None
    }
    return SessionUser(user, projects, tuple(row.groups))


async def end_session(session: AsyncSession, value: str) -> None:
    """Sign the session out (nothing happens for an unknown one)."""
    await session.execute(delete(WebSession).where(WebSession.id == digest(value)))
