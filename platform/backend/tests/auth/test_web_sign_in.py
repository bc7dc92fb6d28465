"""The web UI signs in through the backend (code + PKCE against a real OpenID Provider), on
both tiers: the browser ends up with an HttpOnly session cookie and never a token; a bad,
stale or signed-out cookie is a 401; a forged or crossed sign-in is refused and audited; the
page to return to is always this site's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from trainyard.auth.models import AuditEvent
from trainyard.auth.oidc import InvalidToken, OidcTokenVerifier
from trainyard.auth.web_sessions import SESSION_COOKIE, WebSession, digest
from trainyard.auth.web_sign_in import FLOW_COOKIE, safe_next
from trainyard.core.db import utcnow
from trainyard.main import create_app
from trainyard.runtime import Runtime
from trainyard_testing.oidc import OidcProvider

from ..conftest import make_settings
from .web_browser import (
    at_the_provider,
    path_of,
    set_cookies,
    sign_in,
    start,
    web_sign_in_settings,
    with_session,
)

LIFETIME_S = 3600


@pytest.fixture
async def web_app(
    tmp_path: Path,
    temporal_address: str,
    backend_tier: dict[str, object],
    oidc_provider: OidcProvider,
) -> AsyncIterator[FastAPI]:
    settings = await web_sign_in_settings(
        oidc_provider,
        tmp_path / "data",
        temporal_address,
        backend_tier,
        oidc_group_roles={"ml-team": "ml-team:member"},
        session_lifetime_s=LIFETIME_S,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web_app), base_url="http://trainyard.test"
    ) as client:
        yield client


def runtime(app: FastAPI) -> Runtime:
    found: Runtime = app.state.runtime
    return found


async def sign_in_failures(app: FastAPI) -> list[AuditEvent]:
    async with runtime(app).db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == "sign_in.fail")
        return list((await session.execute(query)).scalars())


async def test_a_sign_in_lands_on_next_with_an_httponly_session_cookie_and_no_token(
    web_app: FastAPI, api: httpx.AsyncClient
) -> None:
    signed_in = await sign_in(api, "alice", "/jobs/job_1?tab=events")

    assert signed_in.landed == "/jobs/job_1?tab=events"
    flags = [part.strip().lower() for part in signed_in.session_header.split(";")]
    assert {"httponly", "secure", "samesite=lax", "path=/", f"max-age={LIFETIME_S}"} <= set(flags)
    assert not any(flag.startswith("domain") for flag in flags)
    # The flow cookie is cleared; nothing the browser gets carries a token.
    assert "max-age=0" in set_cookies(signed_in.callback)[FLOW_COOKIE].lower()
    assert signed_in.callback.content == b""
    assert "token" not in signed_in.landed.lower()

    me = await api.get("/v1/me", headers=with_session(signed_in.session))

    assert me.status_code == 200, me.text
    assert me.json()["credential"] == "session"
    assert me.json()["user"]["email"] == "alice@example.test"
    assert [p["slug"] for p in me.json()["projects"]] == ["ml-team"]  # her group's project
    async with runtime(web_app).db.session() as session:
        stored = list((await session.execute(select(WebSession.id))).scalars())
    assert stored == [digest(signed_in.session)]  # the digest, never the value


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("never-issued", id="unknown"),
        pytest.param(None, id="tampered"),
    ],
)
async def test_an_unknown_or_tampered_session_cookie_is_a_401(
    api: httpx.AsyncClient, cookie: str | None
) -> None:
    if cookie is None:
        real = (await sign_in(api, "bob")).session
        cookie = real[:-2] + ("AA" if not real.endswith("AA") else "BB")

    me = await api.get("/v1/me", headers=with_session(cookie))

    assert me.status_code == 401
    assert me.json()["code"] == "invalid_session"
    assert cookie not in me.text


async def test_an_expired_session_is_a_401(web_app: FastAPI, api: httpx.AsyncClient) -> None:
    signed_in = await sign_in(api, "bob")
    async with runtime(web_app).db.session() as session:
        await session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))

    me = await api.get("/v1/me", headers=with_session(signed_in.session))

    assert me.status_code == 401
    assert "expired" in me.json()["detail"]


async def test_an_answer_for_another_sign_in_is_refused_and_audited(
    web_app: FastAPI, api: httpx.AsyncClient
) -> None:
    authorize, _ = await start(api)
    back = await at_the_provider(authorize, "alice")
    # This browser's flow cookie is another sign-in's (e.g. an attacker's code fed to it).
    _, other_flow = await start(api)

    callback = await api.get(path_of(back), headers={"Cookie": f"{FLOW_COOKIE}={other_flow}"})

    assert callback.status_code == 400
    assert callback.json()["code"] == "sign_in_refused"
    assert "state" in callback.json()["detail"]
    assert SESSION_COOKIE not in set_cookies(callback)
    assert any("state" in e.detail["reason"] for e in await sign_in_failures(web_app))


@pytest.mark.parametrize(
    "flow", [pytest.param(None, id="no-flow-cookie"), pytest.param("forged", id="forged")]
)
async def test_a_callback_without_this_platforms_flow_cookie_is_refused(
    web_app: FastAPI, api: httpx.AsyncClient, flow: str | None
) -> None:
    authorize, real_flow = await start(api)
    back = await at_the_provider(authorize, "alice")
    headers = {}
    if flow is not None:
        payload, _, signature = real_flow.partition(".")
        headers = {"Cookie": f"{FLOW_COOKIE}={payload}.{signature[::-1]}"}

    callback = await api.get(path_of(back), headers=headers)

    assert callback.status_code == 400
    assert SESSION_COOKIE not in set_cookies(callback)
    assert len(await sign_in_failures(web_app)) == 1


async def test_the_providers_refusal_is_a_400_naming_it(
    web_app: FastAPI, api: httpx.AsyncClient
) -> None:
    authorize, flow = await start(api)
    state = httpx.URL(authorize).params["state"]

    callback = await api.get(
        "/auth/callback",
        params={"state": state, "error": "access_denied", "error_description": "the user said no"},
        headers={"Cookie": f"{FLOW_COOKIE}={flow}"},
    )

    assert callback.status_code == 400
    assert "access_denied" in callback.json()["detail"]
    assert len(await sign_in_failures(web_app)) == 1


async def test_a_code_redeemed_twice_is_refused(api: httpx.AsyncClient) -> None:
    authorize, flow = await start(api)
    back = await at_the_provider(authorize, "alice")
    first = await api.get(path_of(back), headers={"Cookie": f"{FLOW_COOKIE}={flow}"})
    assert first.status_code == 302

    replayed = await api.get(path_of(back), headers={"Cookie": f"{FLOW_COOKIE}={flow}"})

    assert replayed.status_code == 400
    assert "invalid_grant" in replayed.json()["detail"]


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example", "//evil.example/x", "/\\evil.example", "evil", "/\t/evil.example"],
)
async def test_next_outside_this_site_lands_on_the_home_page(
    api: httpx.AsyncClient, next_path: str
) -> None:
    assert (await sign_in(api, "alice", next_path)).landed == "/"


def test_safe_next_keeps_this_sites_paths() -> None:
    assert safe_next("/datasets?name=a%2Fb#top") == "/datasets?name=a%2Fb#top"
    assert safe_next(None) == "/"


async def test_after_logout_the_cookie_no_longer_works(
    oidc_provider: OidcProvider, api: httpx.AsyncClient
) -> None:
    signed_in = await sign_in(api, "alice")

    logout = await api.post("/auth/logout", headers=with_session(signed_in.session))

    assert logout.status_code == 200, logout.text
    url = logout.json()["logout_url"]
    assert url.startswith(oidc_provider.discovery["end_session_endpoint"])
    cleared = set_cookies(logout)[SESSION_COOKIE].lower()
    assert {"max-age=0", "secure", "httponly", "path=/"} <= {
        part.strip() for part in cleared.split(";")
    }
    me = await api.get("/v1/me", headers=with_session(signed_in.session))
    assert me.status_code == 401


async def test_logout_needs_a_session(api: httpx.AsyncClient) -> None:
    assert (await api.post("/auth/logout")).status_code == 401


async def test_the_sign_in_routes_are_404_without_sign_in(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> None:
    application = create_app(make_settings(tmp_path / "data", temporal_address, **backend_tier))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://trainyard.test"
        ) as local,
    ):
        for answer in (
            await local.get("/auth/login"),
            await local.get("/auth/callback", params={"code": "x", "state": "y"}),
            await local.post("/auth/logout"),
        ):
            assert answer.status_code == 404, answer.text
        # A stale cookie changes nothing there: the local user it stays.
        me = await local.get("/v1/me", headers=with_session("stale"))
        assert me.json()["credential"] == "local"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"nonce": "another"}, "nonce", id="another-nonce"),
        pytest.param({"nonce": None}, "`nonce` claim", id="no-nonce"),
        pytest.param({"aud": "another-client"}, "audience", id="another-client"),
        pytest.param(
            {"aud": ["trainyard-web", "x"], "azp": "x"}, "another client", id="foreign-azp"
        ),
    ],
)
async def test_an_id_token_for_another_sign_in_or_client_is_refused(
    oidc_provider: OidcProvider, overrides: dict[str, object], reason: str
) -> None:
    claims = oidc_provider.claims("alice", **{"aud": "trainyard-web", "nonce": "ours", **overrides})
    claims = {name: value for name, value in claims.items() if value is not None}
    settings = make_settings(
        Path("/nonexistent/id-token"),
        "127.0.0.1:7233",
        auth_mode="oidc",
        oidc_issuer=oidc_provider.issuer,
        oidc_audience=oidc_provider.audience,
        session_secret="a-session-secret-of-the-id-token-test-01",
    )
    async with httpx.AsyncClient() as http:
        verifier = OidcTokenVerifier(settings, http)
        control = oidc_provider.claims("alice", aud="trainyard-web", nonce="ours")
        assert (
            await verifier.verify_id_token(
                oidc_provider.forge(control), client_id="trainyard-web", nonce="ours"
            )
        ).subject == "alice"

        with pytest.raises(InvalidToken) as refusal:
            await verifier.verify_id_token(
                oidc_provider.forge(claims), client_id="trainyard-web", nonce="ours"
            )

    assert reason in refusal.value.message
