"""The CLI's side of OpenID Connect: the device authorization flow (RFC 8628) against the IdP
that `GET /v1/auth/config` names, refreshing an access token, and revoking a refresh token.

Errors say what happened and what to do; none quotes a token (the IdP's `error_description`
is shown: it describes, it never carries a credential).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from trainyard.cli.credentials import OidcCredentials
from trainyard.cli.errors import PlatformError

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 8628 §3.5: without an `interval`, poll every 5 s; `slow_down` adds 5 s.
DEFAULT_INTERVAL_S = 5.0
SLOW_DOWN_STEP_S = 5.0
# Refresh this long before the access token expires (less for very short-lived tokens).
REFRESH_EARLY_S = 30.0
IDP_TIMEOUT_S = 10.0


class SignInFailed(PlatformError):
    """The sign-in did not end with tokens; the message says why and what to do."""


@dataclass(frozen=True)
class IdentityProvider:
    """The endpoints of the IdP's discovery document the CLI uses."""

    issuer: str
    device_authorization_endpoint: str | None
    token_endpoint: str
    revocation_endpoint: str | None


@dataclass(frozen=True)
class DeviceCode:
    """What the user sees: where to go and which code to enter."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in_s: float


def discover(http: httpx.Client, issuer: str) -> IdentityProvider:
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    document = _json(_send(http, "GET", url, "the IdP's discovery document"), url)
    token_endpoint = document.get("token_endpoint")
    if not isinstance(token_endpoint, str):
        raise SignInFailed(f"the IdP {issuer} publishes no token endpoint at {url}")
    device = document.get("device_authorization_endpoint")
    revocation = document.get("revocation_endpoint")
    return IdentityProvider(
        issuer=issuer,
        device_authorization_endpoint=device if isinstance(device, str) else None,
        token_endpoint=token_endpoint,
        revocation_endpoint=revocation if isinstance(revocation, str) else None,
    )


def sign_in_with_device(
    http: httpx.Client,
    idp: IdentityProvider,
    client_id: str,
    scopes: list[str],
    show: Callable[[DeviceCode], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> OidcCredentials:
    """Ask for a device code, `show` it to the user, and poll the token endpoint until they
    approve it at the IdP (or deny it, or let it expire)."""
    if idp.device_authorization_endpoint is None:
        raise SignInFailed(
            f"the IdP {idp.issuer} offers no device sign-in: use an API key "
            "(`trainyard login --api-key`)"
        )
    answer = _send(
        http,
        "POST",
        idp.device_authorization_endpoint,
        "the device authorization",
        data={"client_id": client_id, "scope": " ".join(scopes)},
    )
    if answer.status_code != 200:
        raise SignInFailed(f"the IdP refused to start a device sign-in: {_oauth_error(answer)}")
    grant = _json(answer, idp.device_authorization_endpoint)
    try:
        device_code = str(grant["device_code"])
        code = DeviceCode(
            user_code=str(grant["user_code"]),
            verification_uri=str(grant["verification_uri"]),
            verification_uri_complete=grant.get("verification_uri_complete"),
            expires_in_s=float(grant.get("expires_in", 600)),
        )
        interval = float(grant.get("interval", DEFAULT_INTERVAL_S))
    except (KeyError, TypeError, ValueError):
        raise SignInFailed("the IdP's device authorization answer is incomplete") from None
    show(code)
    deadline = time.monotonic() + code.expires_in_s
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": client_id}
    while True:
        sleep(interval)
        answer = _send(http, "POST", idp.token_endpoint, "the token endpoint", data=form)
        if answer.status_code == 200:
            return credentials_from(_json(answer, idp.token_endpoint), idp, client_id, None)
        error = _error_code(answer)
        if error == "authorization_pending":
            pass
        elif error == "slow_down":
            interval += SLOW_DOWN_STEP_S
        elif error == "expired_token":
            raise SignInFailed("the code expired before it was approved: run `trainyard login`")
        elif error == "access_denied":
            raise SignInFailed("the sign-in was denied at the IdP")
        else:
            raise SignInFailed(f"the IdP refused the sign-in: {_oauth_error(answer)}")
        if time.monotonic() > deadline:
            raise SignInFailed("the code expired before it was approved: run `trainyard login`")


def refresh(http: httpx.Client, stored: OidcCredentials) -> OidcCredentials:
    """New tokens for `stored` (its refresh token, rotated if the IdP rotates it)."""
    if stored.refresh_token is None:
        raise SignInFailed("your sign-in has expired: run `trainyard login`")
    answer = _send(
        http,
        "POST",
        stored.token_endpoint,
        "the token endpoint",
        data={
            "grant_type": "refresh_token",
            "refresh_token": stored.refresh_token.get_secret_value(),
            "client_id": stored.client_id,
        },
    )
    if answer.status_code != 200:
        if _error_code(answer) == "invalid_grant":
            raise SignInFailed("your sign-in has expired: run `trainyard login`")
        raise SignInFailed(f"the IdP refused to refresh your sign-in: {_oauth_error(answer)}")
    idp = IdentityProvider(stored.issuer, None, stored.token_endpoint, stored.revocation_endpoint)
    return credentials_from(
        _json(answer, stored.token_endpoint), idp, stored.client_id, stored.refresh_token
    )


def revoke(http: httpx.Client, stored: OidcCredentials) -> bool:
    """Revoke the refresh token at the IdP (RFC 7009); False when the IdP has no revocation
    endpoint or there is nothing to revoke. The access token lives out its short life."""
    if stored.revocation_endpoint is None or stored.refresh_token is None:
        return False
    answer = _send(
        http,
        "POST",
        stored.revocation_endpoint,
        "the revocation endpoint",
        data={
            "token": stored.refresh_token.get_secret_value(),
            "token_type_hint": "refresh_token",
            "client_id": stored.client_id,
        },
    )
    if answer.status_code != 200:
        raise SignInFailed(f"the IdP did not revoke the refresh token: {_oauth_error(answer)}")
    return True


def credentials_from(
    body: dict[str, Any], idp: IdentityProvider, client_id: str, old_refresh: SecretStr | None
) -> OidcCredentials:
    try:
        access_token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 300))
    except (KeyError, TypeError, ValueError):
        raise SignInFailed("the IdP's token answer has no access token") from None
    refresh_token = body.get("refresh_token")
    now = time.time()
    return OidcCredentials(
        issuer=idp.issuer,
        client_id=client_id,
        token_endpoint=idp.token_endpoint,
        revocation_endpoint=idp.revocation_endpoint,
        access_token=SecretStr(access_token),
        refresh_token=SecretStr(refresh_token) if isinstance(refresh_token, str) else old_refresh,
        expires_at=now + lifetime,
        refresh_after=now + lifetime - min(REFRESH_EARLY_S, lifetime / 10),
    )


def _send(http: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, url, timeout=IDP_TIMEOUT_S, **kwargs)
    except httpx.HTTPError as exc:
        # The exception's text names the URL only; the form (with its tokens) is not in it.
        raise SignInFailed(f"cannot reach {what} at {url}: {exc}") from None


def _json(answer: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code != 200 or not isinstance(body, dict):
        raise SignInFailed(f"{url} answered HTTP {answer.status_code}, not the expected JSON")
    return body


def _error_code(answer: httpx.Response) -> str | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _oauth_error(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if not isinstance(body, dict):
        return f"HTTP {answer.status_code}"
    error = body.get("error", f"HTTP {answer.status_code}")
    description = body.get("error_description")
    return f"{error}: {description}" if description else str(error)
