"""The web UI's sign-in through the backend, and stream tickets.

GET  /auth/login?next=/path  302 to the IdP (trainyard.auth.web_sign_in)
GET  /auth/callback          the IdP's answer: a session cookie, then 302 to `next`
POST /auth/logout            ends the session; {"logout_url": the IdP's, or null}
POST /v1/stream/tickets      {job_id} -> {ticket, expires_in}: `?ticket=` on the job's stream

The /auth routes answer 404 in auth_mode local (nobody signs in there).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from trainyard.auth.audit import record_sign_in
from trainyard.auth.authenticate import admit_oidc_user, client_address
from trainyard.auth.oidc import IdentityProviderUnavailable, OidcTokenVerifier
from trainyard.auth.stream_tickets import TICKET_LIFETIME_S, issue_ticket
from trainyard.auth.web_sessions import SESSION_COOKIE, end_session, open_session
from trainyard.auth.web_sign_in import (
    FLOW_COOKIE,
    FLOW_LIFETIME_S,
    SignInFlow,
    SignInRefused,
    WebSignInOff,
    authorization_url,
    check_state,
    idp_refusal,
    logout_url,
    redeem_code,
    seal,
    unseal,
    web_client,
)
from trainyard.core.errors import SIGNED_IN_RESPONSES, Unauthorized, error_responses
from trainyard.deps import CanRead, DatabaseDep, SessionDep, Settings
from trainyard.jobs.service import get_job
from trainyard.projects.schemas import PRINTABLE
from trainyard.runtime import runtime_of

router = APIRouter(tags=["sign-in"])


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    # Script-proof (HttpOnly), HTTPS only (the __Host- prefix demands Secure, Path=/ and no
    # Domain), and sent on the IdP's top-level redirect back to us (Lax) but on no
    # cross-site subrequest.
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
    )


def _clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")


def _verifier(request: Request) -> OidcTokenVerifier:
    verifier = runtime_of(request).authenticator.verifier
    if verifier is None:
        raise WebSignInOff("no sign-in here: TRAINYARD_AUTH_MODE is local")
    return verifier


_REDIRECT: dict[int | str, dict[str, Any]] = {
    302: {"description": "To the identity provider's sign-in page"}
}


@router.get(
    "/auth/login", status_code=302, responses={**_REDIRECT, **error_responses(404, 422, 503)}
)
async def sign_in(
    request: Request,
    settings: Settings,
    next_path: Annotated[str, Query(alias="next", max_length=2048)] = "/",
) -> RedirectResponse:
    """Start the web sign-in: to the IdP, then back to `next` (a path of this site)."""
    web_client(settings)
    flow = SignInFlow.new(next_path)
    discovery = await _verifier(request).discovery()
    response = RedirectResponse(authorization_url(settings, discovery, flow), status_code=302)
    response.headers["Cache-Control"] = "no-store"
    _set_cookie(response, FLOW_COOKIE, seal(settings, flow), FLOW_LIFETIME_S)
    return response


@router.get(
    "/auth/callback",
    status_code=302,
    responses={
        302: {"description": "Signed in: to `next`"},
        **error_responses(400, 401, 404, 422, 503),
    },
)
async def sign_in_callback(
    request: Request,
    settings: Settings,
    db: DatabaseDep,
    state: Annotated[str | None, Query(max_length=512)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> RedirectResponse:
    """The IdP's answer: the code is redeemed here (with the client secret) and the browser
    gets a session cookie, never a token. 400 / 401 say why a sign-in is refused."""
    client_id, _ = web_client(settings)
    verifier = _verifier(request)
    authenticator = runtime_of(request).authenticator
    await authenticator.before_sign_in("session", client_address(request))
    try:
        flow = unseal(settings, request.cookies.get(FLOW_COOKIE))
        check_state(flow, state)
        if error is not None:
            raise idp_refusal(error, error_description)
        if not code:
            raise SignInRefused("the identity provider sent neither a code nor an error")
        discovery = await verifier.discovery()
        id_token = await redeem_code(settings, discovery, flow, code)
        token = await verifier.verify_id_token(id_token, client_id=client_id, nonce=flow.nonce)
    except (SignInRefused, Unauthorized) as refused:
        await authenticator.sign_in_failed("session", refused.message, client_address(request))
        raise
    groups = verifier.groups(token)
    # The IdP was called above, before this transaction opened: none is held across it.
    async with db.session() as session:
        user, _ = await admit_oidc_user(session, settings, token, groups)
        value = await open_session(session, user.id, groups, settings.session_lifetime_s)
        record_sign_in(session, user.id, "session", client_address(request))
    response = RedirectResponse(flow.next, status_code=302)
    response.headers["Cache-Control"] = "no-store"
    _clear_cookie(response, FLOW_COOKIE)
    _set_cookie(response, SESSION_COOKIE, value, settings.session_lifetime_s)
    return response


class SignedOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Where to send the browser to end its session at the IdP too (null: it has no such page).
    logout_url: str | None


@router.post("/auth/logout", responses=SIGNED_IN_RESPONSES)
async def sign_out(
    request: Request, response: Response, _: CanRead, settings: Settings, session: SessionDep
) -> SignedOut:
    """End this browser's session: its cookie stops working at once, here and on every
    replica."""
    web_client(settings)
    try:
        # Before the session's first statement: no transaction is held across an IdP call.
        url = logout_url(settings, await _verifier(request).discovery())
    except IdentityProviderUnavailable:
        url = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await end_session(session, cookie)
    _clear_cookie(response, SESSION_COOKIE)
    return SignedOut(logout_url=url)


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Printable only: PostgreSQL refuses a NUL in text (a 500 instead of the 422 it is).
    job_id: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)


class StreamTicketAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # `?ticket=` on /v1/jobs/{job_id}/stream: once, within `expires_in` seconds.
    ticket: str
    expires_in: int


@router.post(
    "/v1/stream/tickets", status_code=201, responses=error_responses(400, 401, 403, 404, 422)
)
async def create_stream_ticket(
    body: TicketRequest, response: Response, access: CanRead, session: SessionDep
) -> StreamTicketAnswer:
    """A ticket to open one job's event stream (404 when the job is not the caller's)."""
    await get_job(session, access, body.job_id)
    response.headers["Cache-Control"] = "no-store"
    ticket = await issue_ticket(session, access.user_id, body.job_id)
    return StreamTicketAnswer(ticket=ticket, expires_in=TICKET_LIFETIME_S)
