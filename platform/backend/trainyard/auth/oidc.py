"""Bearer tokens from the OpenID Provider: a JWT is accepted when the IdP's published key signs it
and its issuer, audience and lifetime are ours.

The IdP's keys come from its discovery document (`<issuer>/.well-known/openid-configuration` ->
`jwks_uri`) and are kept `oidc_jwks_cache_s`. A token signed with a key id we do not hold fetches
them again at once (the IdP rotated), but at most once per `oidc_jwks_min_refetch_s`, so tokens
with made-up key ids cannot make every request call the IdP.

Only the asymmetric algorithms of `oidc_algorithms` verify, with the algorithm bound to the key
(never the one the token's header names on its own): `alg: none` and HS256 signed with the public
key as a shared secret are refused before any key is looked at.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from trainyard.core.errors import ServiceUnavailable, Unauthorized
from trainyard.core.settings import BackendSettings

log = logging.getLogger(__name__)

# Claims every token must carry; pyjwt checks presence, then the values below.
REQUIRED_CLAIMS = ("sub", "exp", "iss", "aud")
# An ID token (the web sign-in) also carries when it was issued and the nonce of its request
# (OpenID Connect Core 1.0 §3.1.3.7).
ID_TOKEN_CLAIMS = (*REQUIRED_CLAIMS, "iat", "nonce")
# The IdP answers in well under a second; a hung one must not hold a request for long.
IDP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature, issuer, audience and lifetime were checked."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]


class InvalidToken(Unauthorized):
    """401: the bearer token is not one of ours. The message says why and never quotes it."""

    code = "invalid_token"


class IdentityProviderUnavailable(ServiceUnavailable):
    """503: the IdP's keys cannot be fetched, so no token can be checked right now."""

    code = "idp_unavailable"


# pyjwt's reasons, in words that help whoever holds the token (first match wins: subclasses
# come before their bases).
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidIssuerError, "the token was issued by another issuer"),
    (jwt.InvalidAudienceError, "the token is meant for another audience"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's signing algorithm is not accepted"),
    (jwt.InvalidKeyError, "the token's key cannot verify it"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
)


class OidcTokenVerifier:
    """Checks bearer JWTs against the IdP of `settings` (one per process: it holds the keys)."""

    def __init__(self, settings: BackendSettings, http: httpx.AsyncClient) -> None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("OidcTokenVerifier needs TRAINYARD_OIDC_ISSUER and _AUDIENCE")
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._algorithms: list[str] = list(settings.oidc_algorithms)
        self._groups_claim = settings.oidc_groups_claim
        self._leeway = settings.oidc_leeway_s
        self._cache_s = settings.oidc_jwks_cache_s
        self._min_refetch_s = settings.oidc_jwks_min_refetch_s
        self._http = http
        self._jwks_uri: str | None = None
        # The discovery document, kept with the keys (the web sign-in needs its endpoints).
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, dict[str, Any]] = {}  # kid -> public JWK ("" when it has none)
        self._fetched_at: float | None = None  # monotonic, last successful fetch
        self._tried_at: float | None = None  # monotonic, last attempt (throttles refetches)
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> VerifiedToken:
        """The token's verified claims, or InvalidToken (401) saying why; 503 when the IdP's
        keys cannot be fetched."""
        return await self._verified(token, self._audience, REQUIRED_CLAIMS)

    async def verify_id_token(self, token: str, *, client_id: str, nonce: str) -> VerifiedToken:
        """An ID token from the token endpoint (the web sign-in): signed by the same keys as
        bearer tokens, for `client_id`, carrying the `nonce` its authorization request sent.
        InvalidToken (401) otherwise."""
        verified = await self._verified(token, client_id, ID_TOKEN_CLAIMS)
        claimed = verified.claims["nonce"]
        if not isinstance(claimed, str) or not hmac.compare_digest(
            claimed.encode(), nonce.encode()
        ):
            raise InvalidToken("the ID token answers another sign-in (its nonce differs)")
        audience = verified.claims["aud"]
        # Several audiences: the authorized party must be us (Core §3.1.3.7, steps 4-5).
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and verified.claims.get("azp") != client_id
        ):
            raise InvalidToken("the ID token was issued to another client")
        return verified

    async def discovery(self) -> Mapping[str, Any]:
        """The IdP's discovery document (its endpoints), fetched with its keys; 503 when it
        cannot be fetched."""
        if self._discovery is None:
            await self._refresh(seen_attempt=self._tried_at)
        if self._discovery is None:
            raise IdentityProviderUnavailable(
                f"the identity provider {self._issuer} cannot be reached; try again shortly"
            )
        return self._discovery

    async def _verified(
        self, token: str, audience: str, required: tuple[str, ...]
    ) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        # The allow-list holds asymmetric algorithms only, so `none` and HS* stop here.
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken(
                "the token's signing algorithm is not accepted "
                f"(accepted: {', '.join(self._algorithms)})"
            )
        kid = header.get("kid", "")
        if not isinstance(kid, str):
            raise InvalidToken("the token's key id is malformed")
        key = await self._key(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": list(required),
                    "verify_signature": True,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.MissingRequiredClaimError as missing:
            raise InvalidToken(f"the token lacks the `{missing.claim}` claim") from None
        except jwt.PyJWTError as error:
            reason = next(
                (text for kind, text in _REASONS if isinstance(error, kind)), "invalid token"
            )
            raise InvalidToken(reason) from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the token's `sub` claim is not a non-empty string")
        return VerifiedToken(issuer=self._issuer, subject=subject, claims=claims)

    def groups(self, token: VerifiedToken) -> list[str]:
        """The user's groups from `oidc_groups_claim`: [] when it is unset, absent or not a
        list of strings. A dotted name (`realm_access.roles`, Keycloak) reads a nested claim
        when no claim has that exact name (Auth0's are URLs, dots included)."""
        name = self._groups_claim
        if not name:
            return []
        value: Any = token.claims.get(name)
        if value is None and "." in name:
            value = token.claims
            for part in name.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):  # some IdPs send a lone group as a string
            return [value]
        if isinstance(value, list) and all(isinstance(group, str) for group in value):
            return list(value)
        return []

    # --- keys ------------------------------------------------------------------------------

    async def _key(self, kid: str, alg: str) -> jwt.PyJWK:
        """The IdP's public key `kid`, bound to `alg`; fetches the key set when it is stale or
        lacks `kid` (throttled, see the module doc)."""
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at >= self._cache_s
        if stale or kid not in self._keys:
            await self._refresh(seen_attempt=self._tried_at)
        jwk = self._keys.get(kid)
        if jwk is None and not kid and len(self._keys) == 1:
            # No kid in the token: acceptable when the IdP publishes exactly one key.
            jwk = next(iter(self._keys.values()))
        if jwk is None:
            raise InvalidToken(
                "the token is signed with a key the identity provider does not publish"
            )
        declared = jwk.get("alg")
        if declared is not None and declared != alg:
            raise InvalidToken("the token's signing algorithm does not match its key")
        try:
            # Bound to the header's (allowed) algorithm: an RSA key verifies RS256 or PS256,
            # and never as an HMAC secret.
            return jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise InvalidToken("the token's signing algorithm does not match its key") from None

    async def _refresh(self, *, seen_attempt: float | None) -> None:
        """Fetch the key set unless another request did since `seen_attempt`, or the last
        attempt was under `oidc_jwks_min_refetch_s` ago. On failure the keys already held
        stay in use; with none held the request is a 503."""
        async with self._lock:
            now = time.monotonic()
            if self._tried_at is not None and (
                self._tried_at != seen_attempt or now - self._tried_at < self._min_refetch_s
            ):
                if not self._keys:
                    raise IdentityProviderUnavailable(
                        f"the identity provider {self._issuer} was unreachable moments ago; "
                        "try again shortly"
                    )
                return
            self._tried_at = now
            try:
                self._keys = await self._fetch_keys()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                self._jwks_uri = None  # rediscover next time: the IdP may have moved it
                if self._keys:
                    log.warning("keeping the IdP's cached signing keys: fetch failed: %s", error)
                    return
                raise IdentityProviderUnavailable(
                    f"the identity provider {self._issuer} cannot be reached to fetch its "
                    f"signing keys ({type(error).__name__}); try again shortly"
                ) from error
            self._fetched_at = time.monotonic()

    async def _fetch_keys(self) -> dict[str, dict[str, Any]]:
        if self._jwks_uri is None:
            url = f"{self._issuer.rstrip('/')}/.well-known/openid-configuration"
            discovery = await self._get_json(url)
            # OpenID Connect Discovery 1.0 §4.3: the document must name the issuer we trust.
            if discovery.get("issuer") != self._issuer:
                raise ValueError(f"the discovery document at {url} names another issuer")
            self._jwks_uri = str(discovery["jwks_uri"])
            self._discovery = discovery
        keys: dict[str, dict[str, Any]] = {}
        for jwk in (await self._get_json(self._jwks_uri))["keys"]:
            # Signing keys of asymmetric types only: a published `oct` key is never a verifier.
            if not isinstance(jwk, dict) or jwk.get("kty") not in {"RSA", "EC", "OKP"}:
                continue
            if jwk.get("use", "sig") != "sig":
                continue
            keys[str(jwk.get("kid", ""))] = jwk
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        answer = await self._http.get(url, timeout=IDP_TIMEOUT_S)
        answer.raise_for_status()
        body = answer.json()
        if not isinstance(body, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return body
