"""The web UI's sign-in, run by the backend (backend-for-frontend): authorization code + PKCE.

`/auth/login` sends the browser to the IdP with a fresh state, nonce and PKCE verifier; they
and the page to return to travel in `__Host-trainyard_sign_in`, a short-lived cookie signed
with `session_secret` (HMAC-SHA256), not in server memory, so any replica can finish the
flow. `/auth/callback` checks the state against it, redeems the code at the token endpoint
with the client secret, and checks the ID token (signature by the IdP's keys, issuer,
audience = our client id, nonce). No token ever reaches the browser: it gets a session
cookie (trainyard.auth.web_sessions) and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from trainyard.auth.oidc import IDP_TIMEOUT_S, IdentityProviderUnavailable, InvalidToken
from trainyard.core.errors import NotFound, ServiceUnavailable, TrainyardError
from trainyard.core.settings import BackendSettings

FLOW_COOKIE = "__Host-trainyard_sign_in"
# Long enough to type a password and pass a second factor at the IdP.
FLOW_LIFETIME_S = 600
CALLBACK_PATH = "/auth/callback"
# The groups scope is asked for only where groups map to roles (an IdP may refuse a scope it
# does not know).
BASE_SCOPE = "openid email profile"
# Separates this HMAC's messages from any other use of session_secret.
_PURPOSE = b"trainyard.sign_in.v1."


class SignInRefused(TrainyardError):
    """400: the sign-in cannot finish (no flow under way, state mismatch, the IdP said no)."""

    status_code = 400
    code = "sign_in_refused"


class WebSignInOff(NotFound):
    """404: auth_mode local has nothing to sign in to."""

    code = "not_found"


class WebSignInNotConfigured(ServiceUnavailable):
    code = "web_sign_in_not_configured"


@dataclass(frozen=True)
class SignInFlow:
    """One sign-in under way, as its cookie carries it."""

    state: str
    nonce: str
    verifier: str
    next: str
    expires: int  # unix seconds

    @classmethod
    def new(cls, next_path: str) -> SignInFlow:
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),  # 64 characters: RFC 7636 asks for 43-128
            next=safe_next(next_path),
            expires=int(time.time()) + FLOW_LIFETIME_S,
        )

    @property
    def challenge(self) -> str:
        return _b64(hashlib.sha256(self.verifier.encode()).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def safe_next(value: str | None) -> str:
    """Where the browser may be sent after signing in: a path of this site ("/jobs/x?tab=1"),
    else "/". No scheme, no host, no "//" or "/\\" (browsers read both as another host), no
    control characters: no open redirect."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c in {"\x7f", "\\"} for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def web_client(settings: BackendSettings) -> tuple[str, str]:
    """(client id, redirect URI) of the web sign-in; 404 in auth_mode local, 503 naming what
    is missing when it is not configured."""
    if settings.auth_mode != "oidc":
        raise WebSignInOff("no sign-in here: TRAINYARD_AUTH_MODE is local")
    missing = [
        name
        for name, value in (
            ("TRAINYARD_OIDC_CLIENT_ID", settings.oidc_client_id),
            ("TRAINYARD_PUBLIC_URL", settings.public_url),
        )
        if not value
    ]
    if missing or settings.oidc_client_id is None or settings.public_url is None:
        raise WebSignInNotConfigured(f"the web sign-in needs {' and '.join(missing)}")
    return settings.oidc_client_id, settings.public_url.rstrip("/") + CALLBACK_PATH


def seal(settings: BackendSettings, flow: SignInFlow) -> str:
    """The flow cookie's value: its JSON and an HMAC of it, both base64url."""
    payload = _b64(json.dumps(asdict(flow), separators=(",", ":")).encode())
    return f"{payload}.{_signature(settings, payload)}"


def unseal(settings: BackendSettings, value: str | None) -> SignInFlow:
    """The flow a cookie carries; SignInRefused when it is missing, forged or stale."""
    if not value:
        raise SignInRefused(
            "no sign-in is under way in this browser (or it took over "
            f"{FLOW_LIFETIME_S // 60} minutes): start again from /auth/login"
        )
    payload, _, signature = value.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(settings, payload).encode()):
        raise SignInRefused("the sign-in cookie is not one this platform signed")
    try:
        fields: Any = json.loads(_unb64(payload))
        flow = SignInFlow(**fields)
    except (ValueError, TypeError):
        raise SignInRefused("the sign-in cookie is malformed") from None
    if flow.expires < time.time():
        raise SignInRefused("the sign-in took too long; start again from /auth/login")
    return flow


def _signature(settings: BackendSettings, payload: str) -> str:
    key = settings.session_secret.get_secret_value().encode()
    return _b64(hmac.new(key, _PURPOSE + payload.encode(), hashlib.sha256).digest())


def authorization_url(
    settings: BackendSettings, discovery: Mapping[str, Any], flow: SignInFlow
) -> str:
    client_id, redirect_uri = web_client(settings)
    scope = f"{BASE_SCOPE} groups" if settings.oidc_groups_claim == "groups" else BASE_SCOPE
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": flow.challenge,
            "code_challenge_method": "S256",
        }
    )
    endpoint = str(discovery["authorization_endpoint"])
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def check_state(flow: SignInFlow, state: str | None) -> None:
    if state is None or not hmac.compare_digest(state.encode(), flow.state.encode()):
        raise SignInRefused("the sign-in answer is for another sign-in (state mismatch)")


async def redeem_code(
    settings: BackendSettings, discovery: Mapping[str, Any], flow: SignInFlow, code: str
) -> str:
    """The ID token the token endpoint gives for `code` (the access and refresh tokens it
    may give too are dropped: the browser's session is ours, not the IdP's)."""
    client_id, redirect_uri = web_client(settings)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": flow.verifier,
    }
    auth: httpx.Auth | None = None
    if settings.oidc_client_secret is not None:
        auth = httpx.BasicAuth(client_id, settings.oidc_client_secret.get_secret_value())
    else:  # a public client names itself (RFC 6749 §4.1.3)
        form["client_id"] = client_id
    try:
        async with httpx.AsyncClient(timeout=IDP_TIMEOUT_S) as http:
            answer = await http.post(
                str(discovery["token_endpoint"]),
                data=form,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
    except httpx.HTTPError as error:
        raise IdentityProviderUnavailable(
            f"the identity provider's token endpoint cannot be reached ({type(error).__name__})"
        ) from error
    try:
        body: Any = answer.json()
    except ValueError:
        body = None
    if answer.status_code >= 500 or not isinstance(body, dict):
        raise IdentityProviderUnavailable(
            f"the identity provider's token endpoint answered {answer.status_code}"
        )
    if answer.status_code != 200:
        raise SignInRefused(f"the identity provider refused the sign-in: {_idp_error(body)}")
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise InvalidToken("the identity provider answered without an ID token")
    return id_token


def idp_refusal(error: str, description: str | None) -> SignInRefused:
    """The IdP sent the browser back with `error` instead of a code."""
    reason = _idp_error({"error": error, "error_description": description})
    return SignInRefused(f"the identity provider refused the sign-in: {reason}")


def _idp_error(body: Mapping[str, Any]) -> str:
    # The IdP's words, bounded: they end up in the audit trail and on the page.
    error = str(body.get("error", "unknown_error"))[:64]
    description = body.get("error_description")
    return f"{error} ({str(description)[:160]})" if description else error


def logout_url(settings: BackendSettings, discovery: Mapping[str, Any]) -> str | None:
    """Where the browser ends its session at the IdP too (RP-initiated logout), if the IdP
    has such an endpoint."""
    endpoint = discovery.get("end_session_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    query = urlencode({"client_id": settings.oidc_client_id or ""})
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
