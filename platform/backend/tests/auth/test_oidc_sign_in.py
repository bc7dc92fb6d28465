"""The API with OIDC sign-in, against a real OpenID Provider (oidc-provider on Node), on both
tiers: a token makes (or finds) its user, groups give project roles, every bad token is a 401
that changes nothing, and the API follows a key rotation at the provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy import func, select

from trainyard.auth.models import AuditEvent
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard_testing.oidc import OidcProvider

from ..conftest import make_oidc_settings


def oidc_settings(
    tmp_path: Path, temporal_address: str, tier: dict[str, object], provider: OidcProvider
) -> BackendSettings:
    return make_oidc_settings(
        tmp_path / "data",
        temporal_address,
        provider,
        oidc_group_roles={"ml-team": "ml-team:member", "ml-admins": "ml-team:admin"},
        platform_admins=["carol@example.test"],
        **tier,
    )


@pytest.fixture
def settings(
    tmp_path: Path,
    temporal_address: str,
    backend_tier: dict[str, object],
    oidc_provider: OidcProvider,
) -> BackendSettings:
    """This module's API signs people in at the provider (conftest's `app` and `api` serve it)."""
    return oidc_settings(tmp_path, temporal_address, backend_tier, oidc_provider)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_credential_is_a_401_that_says_how_to_sign_in(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/v1/jobs")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] == "not_signed_in"


async def test_a_real_token_signs_in_its_user_and_groups_give_project_roles(
    api: httpx.AsyncClient, oidc_provider: OidcProvider, job_body: dict[str, Any]
) -> None:
    alice = (await oidc_provider.token_for("alice")).access_token

    me = (await api.get("/v1/me", headers=bearer(alice))).json()
    submitted = await api.post("/v1/jobs", json=job_body, headers=bearer(alice))
    again = (await api.get("/v1/me", headers=bearer(alice))).json()

    assert me["user"]["email"] == "alice@example.test"
    assert me["user"]["platform_admin"] is False
    assert me["credential"] == "oidc"
    assert [(p["slug"], p["role"]) for p in me["projects"]] == [("ml-team", "member")]
    assert me["default_project"] == "ml-team"
    assert submitted.status_code == 201
    assert submitted.json()["owner"] == me["user"]["id"]
    assert again["user"]["id"] == me["user"]["id"]  # found again, not made twice


async def test_a_user_without_a_group_sees_nothing_of_anothers_project(
    api: httpx.AsyncClient, oidc_provider: OidcProvider, job_body: dict[str, Any]
) -> None:
    alice = (await oidc_provider.token_for("alice")).access_token
    job = (await api.post("/v1/jobs", json=job_body, headers=bearer(alice))).json()
    bob = (await oidc_provider.token_for("bob")).access_token

    me = (await api.get("/v1/me", headers=bearer(bob))).json()
    listed = await api.get("/v1/jobs", headers=bearer(bob))
    named = await api.get("/v1/jobs", headers={**bearer(bob), "Trainyard-Project": "ml-team"})
    read = await api.get(f"/v1/jobs/{job['id']}", headers=bearer(bob))
    cancel = await api.post(f"/v1/jobs/{job['id']}/cancel", headers=bearer(bob))

    assert me["projects"] == []
    assert listed.status_code == 404
    assert "not a member of any project" in listed.json()["detail"]
    assert (named.status_code, named.json()["code"]) == (404, "project_not_found")
    assert [read.status_code, cancel.status_code] == [404, 404]


async def test_a_group_that_goes_away_takes_its_role_with_it(
    api: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    admin = (await oidc_provider.token_for("alice", groups=["ml-admins", "ml-team"])).access_token
    member = (await oidc_provider.token_for("alice", groups=["ml-team"])).access_token
    nothing = (await oidc_provider.token_for("alice", groups=[])).access_token

    roles = [
        [
            (p["slug"], p["role"])
            for p in (await api.get("/v1/me", headers=bearer(t))).json()["projects"]
        ]
        for t in (admin, member, nothing)
    ]

    assert roles == [[("ml-team", "admin")], [("ml-team", "member")], []]


async def test_a_platform_admin_is_named_by_email(
    api: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    token = oidc_provider.forge(
        oidc_provider.claims("carol", email="carol@example.test", email_verified=True)
    )

    me = (await api.get("/v1/me", headers=bearer(token))).json()
    made = await api.post(
        "/v1/projects", json={"slug": "carols", "name": "C"}, headers=bearer(token)
    )

    assert me["user"]["platform_admin"] is True
    assert made.status_code == 201


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_every_bad_token_is_a_401_that_changes_nothing_and_is_audited(
    app: FastAPI,
    api: httpx.AsyncClient,
    oidc_provider: OidcProvider,
    job_body: dict[str, Any],
) -> None:
    p = oidc_provider
    real = (await p.token_for("alice")).access_token
    pem = (
        jwt.PyJWK(p.signing_keys[0])
        .key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    bad = {
        "expired": p.forge(p.claims("alice", exp=1_000_000, iat=999_000)),
        "not yet valid": p.forge(p.claims("alice", nbf=4_000_000_000)),
        "wrong issuer": p.forge(p.claims("alice", iss="https://evil.example")),
        "wrong audience": p.forge(p.claims("alice", aud="another-api")),
        "alg none": _unsigned(p.claims("alice")),
        "hs256 with the public key": _hs256(p.claims("alice"), pem, p.signing_keys[0]["kid"]),
        "unknown kid": p.forge(p.claims("alice"), headers={"kid": f"kid-{uuid.uuid4().hex}"}),
        "tampered": _tampered(real),
    }

    answers = {
        name: await api.post("/v1/jobs", json=job_body, headers=bearer(token))
        for name, token in bad.items()
    }

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(bad, 401)
    assert all(a.headers["WWW-Authenticate"].startswith("Bearer") for a in answers.values())
    for name, token in bad.items():
        assert token.split(".")[1] not in answers[name].text
    good = await api.get("/v1/jobs", headers=bearer(real))
    assert good.json()["total"] == 0
    async with app.state.runtime.db.session() as session:
        failures = (
            await session.execute(select(func.count()).where(AuditEvent.action == "sign_in.fail"))
        ).scalar_one()
    assert failures == len(bad)


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 signed with the provider's public key as the secret (the classic confusion):
    made by hand because pyjwt itself refuses a PEM as an HMAC secret."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_the_api_follows_a_key_rotation_at_the_provider(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> None:
    provider = OidcProvider(tmp_path / "idp")
    provider.start()
    try:
        application = create_app(
            oidc_settings(tmp_path, temporal_address, backend_tier, provider).model_copy(
                update={"oidc_jwks_min_refetch_s": 0.0}
            )
        )
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://trainyard.test"
            ) as client,
        ):
            before = (await provider.token_for("alice")).access_token
            assert (await client.get("/v1/me", headers=bearer(before))).status_code == 200
            provider.rotate_keys()
            after = (await provider.token_for("alice")).access_token
            followed = await client.get("/v1/me", headers=bearer(after))
            old = await client.get("/v1/me", headers=bearer(before))
    finally:
        provider.stop()

    assert followed.status_code == 200
    assert old.status_code == 401
