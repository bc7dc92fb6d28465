"""Rate limits: submissions, chat turns and uploads are counted per caller (user, API key) and
per client address, failed sign-ins per client address; past a limit the answer is a 429 with
Retry-After, and nothing is done. Runs on both tiers: in memory (embedded) and in Redis
(production, the tier's own key prefix); an unreachable Redis fails open."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import func, select

from trainyard.auth.models import AuditEvent
from trainyard.auth.roles import Role
from trainyard.auth.web_sessions import SESSION_COOKIE
from trainyard.auth.web_sign_in import FLOW_COOKIE
from trainyard.core.rate_limits import open_rate_limiter
from trainyard.core.settings import BackendSettings
from trainyard.jobs.models import Job
from trainyard.main import create_app
from trainyard.runtime import Runtime
from trainyard_testing.oidc import OidcProvider

from .auth.web_browser import at_the_provider, path_of, set_cookies, start, web_sign_in_settings
from .conftest import REDIS_URL, make_settings
from .support import user_with_key

LIMIT = 5
LIMITS = {"submit": f"{LIMIT}/minute", "chat": "3/minute", "upload": "3/minute"}
SIGN_IN_FAILURES = 3


@pytest.fixture
def settings(
    tmp_path: Path, temporal_address: str, backend_tier: dict[str, object]
) -> BackendSettings:
    return make_settings(
        tmp_path / "data",
        temporal_address,
        **backend_tier,
        rate_limits={**LIMITS, "sign_in_failure": f"{SIGN_IN_FAILURES}/minute"},
    )


def client_of(
    app: FastAPI, headers: dict[str, str] | None = None, address: str = "127.0.0.1"
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://trainyard.test",
        headers=headers,
    )


async def jobs_stored(app: FastAPI) -> int:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Job))).scalar_one())


def assert_rate_limited(answer: httpx.Response, code: str = "rate_limited") -> int:
    assert answer.status_code == 429, answer.text
    assert answer.json()["code"] == code
    assert isinstance(answer.json()["detail"], str)
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


async def test_a_thousand_rapid_submissions_make_only_the_limit_of_jobs(
    app: FastAPI, api: httpx.AsyncClient, job_body: dict[str, Any]
) -> None:
    answers = await asyncio.gather(*(api.post("/v1/jobs", json=job_body) for _ in range(1000)))

    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == LIMIT
    assert statuses.count(429) == 1000 - LIMIT
    for refused in (a for a in answers if a.status_code == 429):
        assert_rate_limited(refused)
    assert await jobs_stored(app) == LIMIT


async def test_the_address_limit_holds_across_users_of_one_address(
    app: FastAPI, job_body: dict[str, Any]
) -> None:
    first = await user_with_key(app, "first", {"default": Role.MEMBER})
    second = await user_with_key(app, "second", {"default": Role.MEMBER})

    async with client_of(app, first, "10.0.0.7") as a, client_of(app, second, "10.0.0.7") as b:
        from_first = [await a.post("/v1/jobs", json=job_body) for _ in range(3)]
        from_second = [await b.post("/v1/jobs", json=job_body) for _ in range(3)]

    # Neither user reached their own limit (3 of 5); the address did, at its 6th request.
    assert [r.status_code for r in from_first] == [201, 201, 201]
    assert [r.status_code for r in from_second[:2]] == [201, 201]
    assert_rate_limited(from_second[2])
    assert await jobs_stored(app) == LIMIT


async def test_one_users_limit_leaves_other_users_alone_and_follows_its_user(
    app: FastAPI, job_body: dict[str, Any]
) -> None:
    busy = await user_with_key(app, "busy", {"default": Role.MEMBER})
    other = await user_with_key(app, "other", {"default": Role.MEMBER})

    async with client_of(app, busy, "10.0.0.1") as client:
        spent = [await client.post("/v1/jobs", json=job_body) for _ in range(LIMIT + 1)]
    async with client_of(app, busy, "10.0.0.2") as elsewhere:
        moved = await elsewhere.post("/v1/jobs", json=job_body)
    async with client_of(app, other, "10.0.0.3") as client:
        theirs = await client.post("/v1/jobs", json=job_body)

    assert [r.status_code for r in spent[:LIMIT]] == [201] * LIMIT
    assert_rate_limited(spent[LIMIT])
    assert_rate_limited(moved)  # a new address does not reset the user's own count
    assert theirs.status_code == 201, theirs.text
    assert await jobs_stored(app) == LIMIT + 1


@pytest.mark.parametrize(
    ("route", "limit", "path", "body"),
    [
        ("chat", 3, "/v1/chat", {"message": "train yolo11n on shapes for 3 epochs"}),
        ("chat", 3, "/v1/chat/stream", {"message": "train yolo11n on shapes"}),
        ("submit", LIMIT, "/v1/chat/cnv_missing/start", {"request": {}}),
        ("upload", 3, "/v1/datasets", {"name": "x", "uri": "file:///nowhere", "format": "yolo"}),
    ],
)
async def test_every_route_that_starts_work_is_limited(
    api: httpx.AsyncClient, route: str, limit: int, path: str, body: dict[str, Any]
) -> None:
    # Refused or not, each request counts: 4xx answers do not buy more attempts.
    answers = [await api.post(path, json=body) for _ in range(limit + 1)]

    assert [a.status_code for a in answers[:limit]].count(429) == 0, route
    assert_rate_limited(answers[limit])


async def test_reads_are_not_limited(api: httpx.AsyncClient, job_body: dict[str, Any]) -> None:
    for _ in range(LIMIT):
        assert (await api.post("/v1/jobs", json=job_body)).status_code == 201
    assert (await api.post("/v1/jobs", json=job_body)).status_code == 429

    reads = [await api.get("/v1/jobs") for _ in range(3 * LIMIT)]

    assert {r.status_code for r in reads} == {200}


async def sign_in_failures(app: FastAPI) -> list[AuditEvent]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == "sign_in.fail")
        return list((await session.execute(query.order_by(AuditEvent.id))).scalars())


async def test_an_address_that_failed_to_sign_in_too_often_is_refused_before_its_key_is_checked(
    app: FastAPI,
) -> None:
    valid = await user_with_key(app, "alice", {"default": Role.MEMBER})
    wrong = {"Authorization": "Bearer tyk_deadbeef_notakey"}

    async with client_of(app, wrong, "10.0.0.9") as guesser:
        guesses = [await guesser.get("/v1/jobs") for _ in range(SIGN_IN_FAILURES)]
    async with client_of(app, valid, "10.0.0.9") as client:
        blocked = await client.get("/v1/jobs")
        again = await client.get("/v1/jobs")
    async with client_of(app, valid, "10.0.0.10") as client:
        elsewhere = await client.get("/v1/jobs")

    assert [g.status_code for g in guesses] == [401] * SIGN_IN_FAILURES
    assert_rate_limited(blocked, "too_many_failed_sign_ins")
    assert_rate_limited(again, "too_many_failed_sign_ins")
    assert elsewhere.status_code == 200, elsewhere.text
    trail = await sign_in_failures(app)
    # Each guess, then the block once (not every refused request: no flood of rows).
    assert [e.client for e in trail] == ["10.0.0.9"] * (SIGN_IN_FAILURES + 1)
    assert all(e.credential == "api_key" for e in trail)
    assert "too many failed sign-ins" in trail[-1].detail["reason"]
    assert all("notakey" not in str(e.detail) for e in trail)


async def test_the_web_sign_in_is_refused_after_too_many_failed_callbacks_from_one_address(
    tmp_path: Path, temporal_address: str, oidc_provider: OidcProvider
) -> None:
    settings = await web_sign_in_settings(
        oidc_provider,
        tmp_path / "data",
        temporal_address,
        {},
        rate_limits={"sign_in_failure": "2/minute"},
    )
    web_app = create_app(settings)
    async with web_app.router.lifespan_context(web_app), client_of(web_app) as browser:
        authorize, flow = await start(browser)
        back = await at_the_provider(authorize, "alice")
        forged = [
            await browser.get(path_of(back), headers={"Cookie": f"{FLOW_COOKIE}=forged"})
            for _ in range(2)
        ]
        genuine = await browser.get(path_of(back), headers={"Cookie": f"{FLOW_COOKIE}={flow}"})

    assert [f.status_code for f in forged] == [400, 400]
    assert_rate_limited(genuine, "too_many_failed_sign_ins")
    assert SESSION_COOKIE not in set_cookies(genuine)


async def test_replicas_share_their_counts_in_redis(
    tmp_path: Path, temporal_address: str, job_body: dict[str, Any]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    apps = [
        create_app(
            make_settings(
                tmp_path / name,
                temporal_address,
                redis_url=REDIS_URL,
                redis_channel_prefix=prefix,
                rate_limits={"submit": "4/minute"},
            )
        )
        for name in ("one", "two")
    ]
    async with (
        apps[0].router.lifespan_context(apps[0]),
        apps[1].router.lifespan_context(apps[1]),
        client_of(apps[0]) as one,
        client_of(apps[1]) as two,
    ):
        first = [await one.post("/v1/jobs", json=job_body) for _ in range(2)]
        second = [await two.post("/v1/jobs", json=job_body) for _ in range(3)]

    assert [r.status_code for r in first + second[:2]] == [201] * 4
    assert_rate_limited(second[2])
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:ratelimit:*")]
    finally:
        await redis.aclose()
    assert keys, "no rate-limit key under the deployment's prefix"


async def test_an_unreachable_redis_fails_open_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = {"submit": "1/minute", "sign_in_failure": "1/minute"}
    caplog.set_level(logging.WARNING, logger="trainyard.core.rate_limits")

    async with open_rate_limiter(limits, "redis://127.0.0.1:1/0", "unreachable", 0.5) as limiter:
        for _ in range(3):
            await limiter.hit("submit", "user:someone", "10.0.0.1")
            await limiter.count_sign_in_failure("10.0.0.1")
            await limiter.check_sign_in("10.0.0.1")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Logged once per outage, not once per request: the storage is left alone for a while.
    assert len(warnings) == 1
    assert "rate limits are off" in warnings[0]


async def test_a_route_whose_limit_is_off_is_not_counted() -> None:
    async with open_rate_limiter({"chat": "off"}, None, "embedded", 1.0) as limiter:
        for _ in range(100):
            await limiter.hit("chat", "user:someone", "10.0.0.1")


@pytest.mark.parametrize(
    ("configured", "named"),
    [
        ('{"submit": "lots"}', "TRAINYARD_RATE_LIMITS['submit']"),
        ('{"upload": "0/minute"}', "TRAINYARD_RATE_LIMITS['upload']"),
        ('{"sumbit": "5/minute"}', "TRAINYARD_RATE_LIMITS names no such route: sumbit"),
    ],
)
def test_a_malformed_limit_stops_the_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, configured: str, named: str
) -> None:
    monkeypatch.setenv("TRAINYARD_RATE_LIMITS", configured)

    with pytest.raises(ValidationError, match=re.escape(named)):
        BackendSettings()


def test_a_route_not_configured_keeps_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_RATE_LIMITS", '{"submit": "5/second;100/hour", "chat": "off"}')

    assert BackendSettings().rate_limits == {
        "submit": "5/second;100/hour",
        "chat": "off",
        "upload": "20/minute",
        "sign_in_failure": "10/minute",
    }
