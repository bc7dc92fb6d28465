"""Who is calling: the one place a request's credential becomes a `Principal`.

In order: an API key (`Authorization: Bearer tyk_...`), an OIDC bearer token (auth_mode
oidc), a stream ticket (`?ticket=`, on a WebSocket handshake only), the web UI's session
cookie (auth_mode oidc), else the embedded tier's local user (auth_mode local) or 401. A
refused credential is recorded in the audit trail (never the credential itself).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from trainyard.auth.api_keys import API_KEY_MARK, looks_like_api_key, verify_api_key
from trainyard.auth.audit import record_sign_in_failure
from trainyard.auth.models import LOCAL_ISSUER, ApiKey, Project, User
from trainyard.auth.oidc import OidcTokenVerifier, VerifiedToken
from trainyard.auth.principal import Principal, ProjectRole
from trainyard.auth.roles import Role, stronger, weaker
from trainyard.auth.stream_tickets import TICKET_PARAM, redeem_ticket
from trainyard.auth.users import (
    ensure_local_user,
    ensure_oidc_user,
    find_user,
    find_user_by_id,
    project_roles,
    sync_group_memberships,
)
from trainyard.auth.web_sessions import SESSION_COOKIE, find_session
from trainyard.core.db import Database
from trainyard.core.errors import Unauthorized
from trainyard.core.rate_limits import RateLimiter, TooManyFailedSignIns
from trainyard.core.settings import BackendSettings

# How long the same token claims skip making or updating their user (a new token with other
# claims, e.g. a changed group, is admitted at once).
ADMISSION_TTL_S = 60.0
_ADMITTED_MAX = 10_000


class NotSignedIn(Unauthorized):
    code = "not_signed_in"


def bearer_token(connection: HTTPConnection) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client is not None else ""


def group_roles(settings: BackendSettings, groups: list[str]) -> dict[str, Role]:
    """The project roles the user's groups give (project slug -> the strongest role)."""
    wanted: dict[str, Role] = {}
    for group in groups:
        mapped = settings.oidc_group_roles.get(group)
        if mapped is None:
            continue
        slug, _, role_name = mapped.rpartition(":")
        role = Role(role_name)
        wanted[slug] = stronger(role, wanted[slug]) if slug in wanted else role
    return wanted


def _is_platform_admin(settings: BackendSettings, token: VerifiedToken) -> bool:
    names = {f"{token.issuer}|{token.subject}"}
    email = token.claims.get("email")
    if isinstance(email, str) and token.claims.get("email_verified", True) is not False:
        names.add(email.lower())
    return any(admin.lower() in names or admin in names for admin in settings.platform_admins)


def _label(user: User) -> str:
    return user.email or user.name or user.subject


def stream_ticket(connection: HTTPConnection) -> str | None:
    """The `?ticket=` of a WebSocket handshake; None on HTTP, where a ticket is no credential."""
    if connection.scope["type"] != "websocket":
        return None
    return connection.query_params.get(TICKET_PARAM) or None


@dataclass(frozen=True)
class _Admitted:
    """A user admitted from a token's claims, and when (see Authenticator._by_oidc_token)."""

    user_id: str
    label: str
    platform_admin: bool
    at: float


def _identity(
    settings: BackendSettings, token: VerifiedToken, groups: list[str]
) -> tuple[str, str, str | None, str | None, bool, tuple[str, ...]]:
    """What a token says about its user: issuer, subject, email, name, platform admin, groups."""
    claims: Mapping[str, Any] = token.claims
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    admin = _is_platform_admin(settings, token)
    return token.issuer, token.subject, email, name, admin, tuple(sorted(groups))


async def admit_oidc_user(
    session: AsyncSession, settings: BackendSettings, token: VerifiedToken, groups: list[str]
) -> tuple[User, dict[str, ProjectRole]]:
    """The user a verified token (a bearer token, or the web sign-in's ID token) names, made
    at their first sign-in, their group memberships brought in step; and their roles."""
    _, _, email, name, admin, _ = _identity(settings, token, groups)
    user = await ensure_oidc_user(session, token.issuer, token.subject, email, name, admin)
    if settings.oidc_groups_claim:
        await sync_group_memberships(session, user.id, group_roles(settings, groups))
        await session.flush()
    return user, await project_roles(session, user.id)


class Authenticator:
    def __init__(
        self,
        settings: BackendSettings,
        db: Database,
        verifier: OidcTokenVerifier | None,
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.db = db
        self.verifier = verifier
        self.limiter = limiter  # failed sign-ins per client address
        # Token claims already brought into the database (user row, group memberships): the
        # same claims again within ADMISSION_TTL_S need only the roles read, not two more
        # queries and a flush per request. Roles themselves are read on every request.
        self._admitted: dict[tuple[object, ...], _Admitted] = {}

    async def principal(self, connection: HTTPConnection) -> Principal:
        client = client_address(connection)
        token = bearer_token(connection)
        ticket = stream_ticket(connection)
        # No session is ever made in auth_mode local: a cookie there is a stale one.
        cookie = connection.cookies.get(SESSION_COOKIE) if self.verifier is not None else None
        kind = (
            ("api_key" if looks_like_api_key(token) else "oidc")
            if token is not None
            else ("stream_ticket" if ticket is not None else "session")
        )
        if token is not None or ticket is not None or cookie is not None:
            await self.before_sign_in(kind, client)
        try:
            if token is not None and looks_like_api_key(token):
                return await self._by_api_key(token, client)
            if token is not None:
                if self.verifier is None:
                    raise NotSignedIn(
                        "this platform signs nobody in with bearer tokens "
                        "(TRAINYARD_AUTH_MODE=local); use an API key or no credential"
                    )
                return await self._by_oidc_token(await self.verifier.verify(token), client)
            if ticket is not None:
                return await self._by_ticket(ticket, connection.path_params.get("job_id"), client)
            if cookie is not None:
                return await self._by_session(cookie, client)
        except Unauthorized as refused:
            await self.sign_in_failed(kind, refused.message, client)
            raise
        if self.settings.auth_mode == "local":
            return await self._local(client)
        raise NotSignedIn("sign in: send Authorization: Bearer <token or API key>")

    async def before_sign_in(self, kind: str, client: str) -> None:
        """Before a credential from `client` is checked: TooManyFailedSignIns (429) when that
        address failed too often, so a brute force cannot go on (audited once per block: a
        flood of refusals writes no flood of rows)."""
        try:
            await self.limiter.check_sign_in(client)
        except TooManyFailedSignIns as refused:
            if refused.first:
                async with self.db.session() as session:
                    record_sign_in_failure(session, kind, refused.message, client)
            raise

    async def sign_in_failed(self, kind: str, reason: str, client: str) -> None:
        """A refused credential: recorded in the audit trail and counted against its address."""
        async with self.db.session() as session:
            record_sign_in_failure(session, kind, reason, client)
        await self.limiter.count_sign_in_failure(client)

    async def prepare(self) -> None:
        """At start-up: the embedded tier's local user, made once (not on every request,
        where concurrent first requests would race to make it)."""
        if self.settings.auth_mode == "local":
            async with self.db.session() as session:
                await ensure_local_user(session, self.settings.owner)

    async def _local(self, client: str) -> Principal:
        async with self.db.session() as session:
            user = await find_user(session, LOCAL_ISSUER, self.settings.owner)
            if user is None:  # deleted while the API runs
                user = await ensure_local_user(session, self.settings.owner)
            projects = await project_roles(session, user.id)
        return Principal(user.id, _label(user), True, projects, "local", client)

    async def _by_oidc_token(self, token: VerifiedToken, client: str) -> Principal:
        groups = self.verifier.groups(token) if self.verifier is not None else []
        identity = _identity(self.settings, token, groups)
        admitted = self._admitted.get(identity)
        now = time.monotonic()
        if admitted is not None and now - admitted.at < ADMISSION_TTL_S:
            async with self.db.session() as session:
                projects = await project_roles(session, admitted.user_id)
        else:
            async with self.db.session() as session:
                user, projects = await admit_oidc_user(session, self.settings, token, groups)
            if len(self._admitted) >= _ADMITTED_MAX:
                self._admitted.clear()
            admitted = _Admitted(user.id, _label(user), user.platform_admin, now)
            self._admitted[identity] = admitted
        return Principal(
            admitted.user_id,
            admitted.label,
            admitted.platform_admin,
            projects,
            "oidc",
            client,
            tuple(groups),
        )

    async def _by_session(self, cookie: str, client: str) -> Principal:
        async with self.db.session() as session:
            signed_in = await find_session(session, cookie)
        user = signed_in.user
        return Principal(
            user.id,
            _label(user),
            user.platform_admin,
            signed_in.projects,
            "session",
            client,
            signed_in.groups,
        )

    async def _by_ticket(self, ticket: str, job_id: str | None, client: str) -> Principal:
        async with self.db.session() as session:
            user = await find_user_by_id(session, await redeem_ticket(session, ticket, job_id))
            projects = await project_roles(session, user.id)
        # Read-only, whatever the user's roles: a ticket opens one job's stream, nothing more.
        viewer = {
            pid: ProjectRole(pid, membership.slug, weaker(membership.role, Role.VIEWER))
            for pid, membership in projects.items()
        }
        return Principal(
            user.id, _label(user), user.platform_admin, viewer, "stream_ticket", client
        )

    async def _by_api_key(self, token: str, client: str) -> Principal:
        async with self.db.session() as session:
            key = await verify_api_key(session, token)
            user = await session.get(User, key.user_id)
            if user is None:  # the user was deleted with their keys (cascade): unreachable
                raise Unauthorized("unknown API key")
            memberships = await project_roles(session, user.id)
            project = await session.get(Project, key.project_id) if key.project_id else None
            projects = _narrowed(key, user, project, memberships)
        return Principal(
            user.id, _label(user), False, projects, f"api_key:{API_KEY_MARK}{key.prefix}", client
        )


def _narrowed(
    key: ApiKey, user: User, project: Project | None, memberships: dict[str, ProjectRole]
) -> dict[str, ProjectRole]:
    """What a key may do: its role, never more than its user's (a platform admin's key acts
    as an admin in its project only), in its project only when it has one."""
    key_role = Role(key.role)
    if project is not None:
        own = memberships.get(project.id)
        if own is None and not user.platform_admin:
            return {}
        user_role = own.role if own is not None else Role.ADMIN
        return {project.id: ProjectRole(project.id, project.slug, weaker(key_role, user_role))}
    return {
        pid: ProjectRole(pid, membership.slug, weaker(key_role, membership.role))
        for pid, membership in memberships.items()
    }
