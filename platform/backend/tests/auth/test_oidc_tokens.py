"""Bearer tokens against a real OpenID Provider (oidc-provider on Node, fixture `oidc_provider`):
tokens it issues through real sign-ins verify; forged, stale, foreign and tampered ones are
refused with a reason; its key rotation is followed; made-up key ids cannot hammer it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from trainyard.auth.oidc import (
    IdentityProviderUnavailable,
    InvalidToken,
    OidcTokenVerifier,
    VerifiedToken,
)
from trainyard.cli.embedded import free_local_port
from trainyard.core.settings import BackendSettings
from trainyard_testing.oidc import OidcProvider, OidcProviderError, new_signing_key


def settings_for(issuer: str, audience: str = "trainyard-api", **fields: Any) -> BackendSettings:
    fields = {"oidc_groups_claim": "groups", **fields}
    return BackendSettings(
        auth_mode="oidc",
        oidc_issuer=issuer,
        oidc_audience=audience,
        session_secret=SecretStr(secrets.token_urlsafe(32)),
        **fields,
    )


class CountingClient:
    """An httpx client that records the path of every request it sends (to the IdP)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

        async def record(request: httpx.Request) -> None:
            self.paths.append(request.url.path)

        self.http = httpx.AsyncClient(event_hooks={"request": [record]})

    def count(self, path: str) -> int:
        return self.paths.count(path)


@pytest.fixture
async def idp_http() -> AsyncIterator[CountingClient]:
    client = CountingClient()
    async with client.http:
        yield client


@pytest.fixture
def verifier(oidc_provider: OidcProvider, idp_http: CountingClient) -> OidcTokenVerifier:
    return OidcTokenVerifier(settings_for(oidc_provider.issuer), idp_http.http)


@pytest.fixture
def own_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    """A provider of this test alone: it is restarted or stopped."""
    provider = OidcProvider(tmp_path)
    try:
        provider.start()
    except OidcProviderError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield provider
    finally:
        provider.stop()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(signature)}"


def public_pem(provider: OidcProvider) -> bytes:
    key = jwt.PyJWK(provider.signing_keys[0]).key
    return key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def refused(verifier: OidcTokenVerifier, token: str) -> str:
    """The reason `token` is refused (a 401 that never quotes the token)."""
    with pytest.raises(InvalidToken) as refusal:
        await verifier.verify(token)
    assert refusal.value.status_code == 401
    assert refusal.value.headers == {"WWW-Authenticate": "Bearer"}
    assert token not in refusal.value.message
    assert token.split(".")[1] not in refusal.value.message
    return refusal.value.message


# --- what the provider issues --------------------------------------------------------------


async def test_a_token_from_a_real_sign_in_verifies_with_its_subject_and_groups(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    tokens = await oidc_provider.token_for("alice", groups=["ml-team", "ml-team-admins"])

    verified = await verifier.verify(tokens.access_token)

    assert verified.issuer == oidc_provider.issuer
    assert verified.subject == "alice"
    assert verified.claims["email"] == "alice@example.test"
    assert verifier.groups(verified) == ["ml-team", "ml-team-admins"]


async def test_a_token_of_the_web_client_verifies_and_a_user_without_groups_has_none(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    tokens = await oidc_provider.token_for("bob", client="web")

    verified = await verifier.verify(tokens.access_token)

    assert (verified.subject, verifier.groups(verified)) == ("bob", [])
    assert verified.claims["client_id"] == oidc_provider.web_client_id


async def test_a_token_from_the_device_flow_verifies(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    device = await oidc_provider.start_device_flow()
    token_request = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device["device_code"],
        "client_id": oidc_provider.cli_client_id,
    }
    async with httpx.AsyncClient() as http:
        pending = await http.post(oidc_provider.discovery["token_endpoint"], data=token_request)
        assert pending.json()["error"] == "authorization_pending"

        await oidc_provider.approve_device_code(device["user_code"], "alice")
        answer = await http.post(oidc_provider.discovery["token_endpoint"], data=token_request)

    assert answer.status_code == 200, answer.text
    verified = await verifier.verify(answer.json()["access_token"])
    assert (verified.subject, verifier.groups(verified)) == ("alice", ["ml-team"])


async def test_the_id_token_is_not_an_access_token_for_the_api(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    tokens = await oidc_provider.token_for("alice")
    assert tokens.id_token is not None

    assert "audience" in await refused(verifier, tokens.id_token)


async def test_a_forged_token_with_valid_claims_verifies(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    # The control for the refusals below: forging itself is not what gets them refused.
    verified = await verifier.verify(oidc_provider.forge(oidc_provider.claims("carol")))

    assert verified.subject == "carol"


async def test_a_token_without_a_key_id_verifies_while_the_provider_has_one_key(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    private = jwt.PyJWK(oidc_provider.signing_keys[0]).key
    token = jwt.encode(oidc_provider.claims("carol"), private, algorithm="RS256")

    assert (await verifier.verify(token)).subject == "carol"


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"exp": int(time.time()) - 3600}, "expired", id="expired"),
        pytest.param({"nbf": int(time.time()) + 3600}, "not valid yet", id="not-yet-valid"),
        pytest.param({"iss": "https://evil.example"}, "another issuer", id="wrong-issuer"),
        pytest.param({"aud": "another-api"}, "another audience", id="wrong-audience"),
        pytest.param({"sub": None}, "`sub` claim", id="no-subject"),
        pytest.param({"exp": None}, "`exp` claim", id="no-expiry"),
        pytest.param({"aud": None}, "`aud` claim", id="no-audience"),
        pytest.param({"iss": None}, "`iss` claim", id="no-issuer"),
    ],
)
async def test_a_token_with_wrong_claims_is_refused_with_the_reason(
    oidc_provider: OidcProvider,
    verifier: OidcTokenVerifier,
    claims: dict[str, Any],
    reason: str,
) -> None:
    forged = {
        key: value
        for key, value in oidc_provider.claims("alice", **claims).items()
        if value is not None
    }

    assert reason in await refused(verifier, oidc_provider.forge(forged))


async def test_clock_skew_within_the_leeway_is_accepted(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    skewed = oidc_provider.claims("alice", exp=int(time.time()) - 10, nbf=int(time.time()) + 10)

    assert (await verifier.verify(oidc_provider.forge(skewed))).subject == "alice"


async def test_an_unsigned_token_is_refused_even_with_a_known_key_id(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": oidc_provider.signing_keys[0]["kid"]}
    token = unsigned_token(header, oidc_provider.claims("alice"), b"")

    assert "algorithm is not accepted" in await refused(verifier, token)


async def test_hs256_with_the_providers_public_key_as_secret_is_refused(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    # The classic confusion attack: anyone holds the public key, so a verifier that lets the
    # header pick HMAC would accept this.
    header = {"alg": "HS256", "typ": "JWT", "kid": oidc_provider.signing_keys[0]["kid"]}
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(oidc_provider.claims("alice")).encode())
    mac = hmac.new(public_pem(oidc_provider), f"{head}.{body}".encode(), hashlib.sha256)
    token = f"{head}.{body}.{b64(mac.digest())}"

    assert "algorithm is not accepted" in await refused(verifier, token)


async def test_a_token_signed_with_a_key_the_provider_does_not_publish_is_refused(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    token = oidc_provider.forge(oidc_provider.claims("alice"), key=new_signing_key())

    assert "does not publish" in await refused(verifier, token)


async def test_a_token_signed_by_another_key_under_the_providers_key_id_is_refused(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    impostor = new_signing_key(kid=oidc_provider.signing_keys[0]["kid"])
    token = oidc_provider.forge(oidc_provider.claims("alice"), key=impostor)

    assert "signature does not verify" in await refused(verifier, token)


async def test_a_tampered_payload_is_refused(
    oidc_provider: OidcProvider, verifier: OidcTokenVerifier
) -> None:
    real = (await oidc_provider.token_for("bob")).access_token
    head, body, signature = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["groups"] = ["platform-admins"]
    tampered = f"{head}.{b64(json.dumps(claims).encode())}.{signature}"

    assert "signature does not verify" in await refused(verifier, tampered)


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "Bearer x.y.z"])
async def test_garbage_is_refused_as_malformed(
    verifier: OidcTokenVerifier, idp_http: CountingClient, garbage: str
) -> None:
    with pytest.raises(InvalidToken, match="well-formed"):
        await verifier.verify(garbage)
    assert idp_http.paths == []  # nothing to look up for it


# --- keys: rotation, throttling, outages ----------------------------------------------------


async def test_after_a_key_rotation_new_tokens_verify_and_the_old_key_is_refused(
    own_provider: OidcProvider, idp_http: CountingClient
) -> None:
    verifier = OidcTokenVerifier(
        settings_for(own_provider.issuer, oidc_jwks_min_refetch_s=0), idp_http.http
    )
    old_key = own_provider.signing_keys[0]
    before = (await own_provider.token_for("alice")).access_token
    assert (await verifier.verify(before)).subject == "alice"

    own_provider.rotate_keys()
    after = (await own_provider.token_for("alice")).access_token

    assert (await verifier.verify(after)).subject == "alice"  # unknown kid: fetched again
    assert "does not publish" in await refused(verifier, before)
    fresh_claims = own_provider.claims("alice")
    assert "does not publish" in await refused(
        verifier, own_provider.forge(fresh_claims, key=old_key)
    )
    assert idp_http.count("/.well-known/openid-configuration") == 1


async def test_a_burst_of_made_up_key_ids_fetches_the_keys_at_most_once(
    oidc_provider: OidcProvider, idp_http: CountingClient
) -> None:
    min_refetch_s = 1.0
    verifier = OidcTokenVerifier(
        settings_for(oidc_provider.issuer, oidc_jwks_min_refetch_s=min_refetch_s), idp_http.http
    )
    claims = oidc_provider.claims("alice")
    # Made-up kids over the provider's own signature: only the kid is unknown.
    tokens = [oidc_provider.forge(claims, headers={"kid": secrets.token_hex(8)}) for _ in range(10)]
    await verifier.verify((await oidc_provider.token_for("alice")).access_token)
    assert idp_http.count("/jwks") == 1
    await asyncio.sleep(min_refetch_s)  # so an unknown kid may fetch the keys again

    concurrent = await asyncio.gather(
        *(verifier.verify(token) for token in tokens * 5), return_exceptions=True
    )
    for token in tokens:  # and one after another
        await refused(verifier, token)

    assert all(isinstance(outcome, InvalidToken) for outcome in concurrent)
    # The first unknown kid fetched the keys once more; no other one did (the burst takes far
    # less than min_refetch_s).
    assert idp_http.count("/jwks") == 2
    assert idp_http.count("/.well-known/openid-configuration") == 1


async def test_an_unreachable_provider_is_a_503_not_a_refusal(
    oidc_provider: OidcProvider, idp_http: CountingClient
) -> None:
    verifier = OidcTokenVerifier(
        settings_for(f"http://127.0.0.1:{free_local_port()}"), idp_http.http
    )
    token = (await oidc_provider.token_for("alice")).access_token

    with pytest.raises(IdentityProviderUnavailable) as outage:
        await verifier.verify(token)
    assert outage.value.status_code == 503
    assert token not in outage.value.message
    # Within oidc_jwks_min_refetch_s the next request does not knock again.
    with pytest.raises(IdentityProviderUnavailable):
        await verifier.verify(token)
    assert idp_http.count("/.well-known/openid-configuration") == 1


async def test_keys_already_held_stay_in_use_while_the_provider_is_down(
    own_provider: OidcProvider, idp_http: CountingClient
) -> None:
    verifier = OidcTokenVerifier(
        settings_for(own_provider.issuer, oidc_jwks_cache_s=0.001, oidc_jwks_min_refetch_s=0),
        idp_http.http,
    )
    token = (await own_provider.token_for("alice")).access_token
    await verifier.verify(token)

    own_provider.stop()
    await asyncio.sleep(0.01)  # the cached keys are now stale

    assert (await verifier.verify(token)).subject == "alice"
    assert idp_http.count("/jwks") == 2  # it did try to refresh them


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(
    oidc_provider: OidcProvider, idp_http: CountingClient
) -> None:
    # The same provider under another spelling of its address: its document names the real
    # issuer, so keys are not taken from it.
    alias = oidc_provider.issuer.replace("127.0.0.1", "localhost")
    verifier = OidcTokenVerifier(settings_for(alias), idp_http.http)

    with pytest.raises(IdentityProviderUnavailable):
        await verifier.verify(oidc_provider.forge(oidc_provider.claims("alice", iss=alias)))
    assert idp_http.count("/jwks") == 0


# --- groups ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "claims", "groups"),
    [
        pytest.param("groups", {"groups": ["a", "b"]}, ["a", "b"], id="list"),
        pytest.param("groups", {"groups": "a"}, ["a"], id="lone-string"),
        pytest.param("groups", {}, [], id="absent"),
        pytest.param(None, {"groups": ["a"]}, [], id="claim-unset"),
        pytest.param("groups", {"groups": 3}, [], id="malformed-number"),
        pytest.param("groups", {"groups": ["a", 3]}, [], id="malformed-item"),
        pytest.param("realm_access.roles", {"realm_access": {"roles": ["x"]}}, ["x"], id="nested"),
        pytest.param(
            "https://trainyard.example/groups",
            {"https://trainyard.example/groups": ["y"]},
            ["y"],
            id="url-named",
        ),
    ],
)
async def test_groups_come_from_the_configured_claim(
    idp_http: CountingClient, claim: str | None, claims: dict[str, Any], groups: list[str]
) -> None:
    settings = settings_for("https://idp.example", oidc_groups_claim=claim)
    verifier = OidcTokenVerifier(settings, idp_http.http)

    assert verifier.groups(VerifiedToken("https://idp.example", "alice", claims)) == groups
