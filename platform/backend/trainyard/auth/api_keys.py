"""API keys for automation: `tyk_<prefix>_<secret>`, shown once, stored as a SHA-256 of the
secret, found by the prefix, narrowed to a role (and optionally one project), revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from trainyard.auth.models import ApiKey
from trainyard.auth.roles import Role
from trainyard.core.db import utcnow
from trainyard.core.errors import Unauthorized

API_KEY_MARK = "tyk_"
# Recording every use would make each request a write; once a minute says enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"


@dataclass(frozen=True)
class NewApiKey:
    row: ApiKey
    # The whole key: returned once, at creation, and never stored.
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_MARK)


def make_api_key(
    user_id: str, project_id: str | None, role: Role, name: str, expires_at: datetime | None
) -> NewApiKey:
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        id=f"key_{uuid.uuid4().hex}",
        prefix=prefix,
        secret_hash=_digest(secret),
        name=name,
        user_id=user_id,
        project_id=project_id,
        role=role,
        expires_at=expires_at,
    )
    return NewApiKey(row, f"{API_KEY_MARK}{prefix}_{secret}")


async def verify_api_key(session: AsyncSession, token: str) -> ApiKey:
    """The live key `token` is; InvalidApiKey (401) for a malformed, unknown, wrong, revoked or
    expired one (the message never repeats the key)."""
    prefix, _, secret = token.removeprefix(API_KEY_MARK).partition("_")
    if not prefix or not secret:
        raise InvalidApiKey("malformed API key")
    key = (
        await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
    ).scalar_one_or_none()
    # Compare even when the prefix is unknown, so timing says nothing about which prefixes exist.
    expected = key.secret_hash if key is not None else _digest("")
    if not hmac.compare_digest(expected, _digest(secret)) or key is None:
        raise InvalidApiKey("unknown API key")
    now = utcnow()
    if key.revoked_at is not None:
        raise InvalidApiKey(f"API key {API_KEY_MARK}{prefix} was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise InvalidApiKey(f"API key {API_KEY_MARK}{prefix} expired")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return key
