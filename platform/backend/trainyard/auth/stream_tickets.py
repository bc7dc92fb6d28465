"""Stream tickets: a WebSocket handshake's credential where no header can carry one.

Browsers cannot set headers on a WebSocket handshake, so `POST /v1/stream/tickets` gives a
signed-in caller a ticket for one job's stream: `?ticket=` on `/v1/jobs/{job_id}/stream`.
A ticket is 256 random bits stored as its SHA-256, good for `TICKET_LIFETIME_S`, on a
WebSocket handshake only, for its job only, once: redeeming marks it used in the same
UPDATE that finds it, so two handshakes racing with one ticket cannot both win.

A query string is logged by many proxies, hence the short life and the single use. uvicorn
logs one too (at info: the handshake line `"WebSocket /v1/jobs/<id>/stream?ticket=..."
[accepted]` on `uvicorn.error`, and HTTP access lines on `uvicorn.access`): `TicketRedaction`,
installed on both by `redact_tickets_in_server_logs` (create_app), writes
`ticket=<redacted>` there instead.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.web_sessions import StreamTicket, digest
from trainyard.core.db import utcnow
from trainyard.core.errors import Unauthorized

TICKET_LIFETIME_S = 30
# The query parameter that carries it.
TICKET_PARAM = "ticket"


_IN_A_QUERY = re.compile(rf"([?&]{TICKET_PARAM}=)[^&\s\"']*")


class TicketRedaction(logging.Filter):
    """Writes `ticket=<redacted>` for the value of every ticket in a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if f"{TICKET_PARAM}=" in message:
            record.msg, record.args = _IN_A_QUERY.sub(r"\1<redacted>", message), None
        return True


_REDACTION = TicketRedaction()


def redact_tickets_in_server_logs() -> None:
    """Install `TicketRedaction` on uvicorn's loggers (create_app calls it, before serving:
    uvicorn logs a stream's handshake whatever the app does). Adding it again changes
    nothing: a logger keeps one copy of a filter, and uvicorn's dictConfig keeps filters."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_REDACTION)


class InvalidTicket(Unauthorized):
    """401 (a WebSocket closes with 4401): unknown, expired, used, or for another stream."""

    code = "invalid_ticket"


async def issue_ticket(session: AsyncSession, user_id: str, job_id: str | None) -> str:
    """A new ticket for `user_id` to open `job_id`'s stream; returns the ticket (shown once).
    The user's spent tickets are deleted on the way (housekeeping without a sweeper)."""
    now = utcnow()
    await session.execute(
        delete(StreamTicket).where(
            StreamTicket.user_id == user_id,
            or_(StreamTicket.expires_at <= now, StreamTicket.used_at.is_not(None)),
        )
    )
    ticket = secrets.token_urlsafe(32)
    session.add(
        StreamTicket(
            id=digest(ticket),
            user_id=user_id,
            job_id=job_id,
            expires_at=now + timedelta(seconds=TICKET_LIFETIME_S),
        )
    )
    return ticket


async def redeem_ticket(session: AsyncSession, ticket: str, job_id: str | None) -> str:
    """Spend `ticket` on `job_id`'s stream; returns its user's id. InvalidTicket (401) saying
    why when it cannot be spent (the message never repeats the ticket)."""
    now = utcnow()
    key = digest(ticket)
    spent = await session.execute(
        update(StreamTicket)
        .where(
            StreamTicket.id == key,
            StreamTicket.used_at.is_(None),
            StreamTicket.expires_at > now,
            StreamTicket.job_id == job_id if job_id is not None else StreamTicket.job_id.is_(None),
        )
        .values(used_at=now)
        .returning(StreamTicket.user_id)
    )
    user_id = spent.scalar_one_or_none()
    if user_id is not None:
        return user_id
    # Why not: read after the failed update (what it says may race; the refusal does not).
    row = (
        await session.execute(select(StreamTicket).where(StreamTicket.id == key))
    ).scalar_one_or_none()
    if row is None:
        raise InvalidTicket("unknown stream ticket")
    if row.used_at is not None:
        raise InvalidTicket("the stream ticket was used already; ask for a new one")
    if row.expires_at <= now:
        raise InvalidTicket("the stream ticket has expired; ask for a new one")
    raise InvalidTicket("the stream ticket is for another stream")
