"""The audit trail: who did what, when, from where. Written in the unit of work of the
change it records, so a change and its record commit (or roll back) together."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.models import AuditEvent
from trainyard.auth.principal import Principal


def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    *,
    project_id: str | None,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit event for `principal` doing `action` (e.g. "job.submit") on `target`."""
    session.add(
        AuditEvent(
            user_id=principal.user_id,
            credential=principal.credential,
            project_id=project_id,
            action=action,
            target=target[:256],
            client=principal.client[:64],
            detail=detail or {},
        )
    )


def record_sign_in_failure(
    session: AsyncSession, credential: str, reason: str, client: str
) -> None:
    """A refused credential: nobody is known, so only what was tried and why (never the
    credential itself)."""
    session.add(
        AuditEvent(
            user_id=None,
            credential=credential,
            project_id=None,
            action="sign_in.fail",
            target="",
            client=client[:64],
            detail={"reason": reason[:200]},
        )
    )


def record_sign_in(session: AsyncSession, user_id: str, credential: str, client: str) -> None:
    """A sign-in that opened a session (the web UI's; bearer tokens sign in per request)."""
    session.add(
        AuditEvent(
            user_id=user_id,
            credential=credential,
            project_id=None,
            action="sign_in",
            target="",
            client=client[:64],
            detail={},
        )
    )
