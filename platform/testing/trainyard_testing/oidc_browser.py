"""The browser half of the test OpenID Provider's flows (trainyard_testing.oidc): the front
channel a user walks through, the token request a client makes, and tokens signed with the
provider's own key for what it would never issue."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from trainyard_testing.credential_leaks import remember_credential
from trainyard_testing.html_forms import only_form, pkce_pair, submit
from trainyard_testing.oidc_accounts import TokenSet


class OidcProviderError(RuntimeError):
    """The provider could not start, or a flow did not end as a user's would."""


async def authorize(
    discovery: Mapping[str, Any], subject: str, client_id: str, redirect_uri: str, scope: str
) -> tuple[str, str]:
    """Run the front channel as `subject`'s browser and return (code, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    # A fresh cookie jar: a browser in which no one is signed in yet.
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(discovery["authorization_endpoint"], params=params)
        for _ in range(10):
            if page.is_redirect:
                location = urljoin(str(page.url), page.headers["location"])
                if location.startswith(redirect_uri.split("?", maxsplit=1)[0]):
                    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                    if answer.get("state") != state or "code" not in answer:
                        raise OidcProviderError(f"sign-in refused: {answer}")
                    return answer["code"], verifier
                page = await http.get(location)
                continue
            form = only_form(page)
            if "login" in form.fields:
                form.fields["login"] = subject
            page = await submit(http, page, form)
    raise OidcProviderError(f"the sign-in did not end: {page.text[-500:]}")


async def token_request(
    discovery: Mapping[str, Any], form: dict[str, str], auth: httpx.Auth | None
) -> TokenSet:
    """POST `form` to the token endpoint; the tokens it answers (remembered as credentials)."""
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            discovery["token_endpoint"], data=form, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
    if answer.status_code != 200:
        raise OidcProviderError(f"token request refused: {answer.text}")
    body = answer.json()
    for name in ("access_token", "refresh_token", "id_token"):
        if body.get(name):
            remember_credential(body[name], name.replace("_", " "))
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        id_token=body.get("id_token"),
        expires_in=int(body["expires_in"]),
    )


def sign_jwt(
    claims: Mapping[str, Any],
    jwk: Mapping[str, Any],
    *,
    headers: Mapping[str, Any] | None = None,
    algorithm: str = "RS256",
) -> str:
    """A JWT of `claims` signed with the private JWK `jwk`, its kid in the header unless
    `headers` says otherwise."""
    key = dict(jwk)
    private = RSAAlgorithm.from_jwk(key)
    token = jwt.encode(
        dict(claims),
        private,  # type: ignore[arg-type]  # from_jwk returns the private key for a private JWK
        algorithm=algorithm,
        headers={"kid": key["kid"], **(headers or {})},
    )
    remember_credential(token, "forged token")
    return token
