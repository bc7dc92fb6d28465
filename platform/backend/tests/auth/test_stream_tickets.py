"""Stream tickets, on both tiers against a real uvicorn server and a real OpenID Provider: a
browser signed in through the backend asks for a ticket and opens its job's stream with it,
once; not another job's, not twice, not after it expired, not on plain HTTP; and the ticket
never reaches the server's log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from trainyard.auth.web_sessions import StreamTicket, digest
from trainyard.core.db import create_engine, utcnow
from trainyard.main import create_app
from trainyard_testing.credential_leaks import remember_credential
from trainyard_testing.oidc import OidcProvider

from ..conftest import LiveServer, run_server
from .web_browser import sign_in, web_sign_in_settings, with_session


@dataclass(frozen=True)
class Browser:
    server: LiveServer
    api: httpx.AsyncClient
    database_url: str
    session: dict[str, str]  # the Cookie header of alice's session


@pytest.fixture
async def browser(
    tmp_path: Path,
    temporal_address: str,
    backend_tier: dict[str, object],
    oidc_provider: OidcProvider,
) -> AsyncIterator[Browser]:
    # alice's group makes her a member of the default project: she may submit there.
    settings = await web_sign_in_settings(
        oidc_provider,
        tmp_path / "data",
        temporal_address,
        backend_tier,
        oidc_group_roles={"ml-team": "default:member"},
    )
    with run_server(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as api:
            session = with_session((await sign_in(api, "alice")).session)
            yield Browser(server, api, settings.database_url, session)


async def job_of(browser: Browser, job_body: dict[str, Any]) -> str:
    made = await browser.api.post("/v1/jobs", json=job_body, headers=browser.session)
    assert made.status_code == 201, made.text
    job_id: str = made.json()["id"]
    return job_id


async def ticket_for(browser: Browser, job_id: str) -> str:
    answer = await browser.api.post(
        "/v1/stream/tickets", json={"job_id": job_id}, headers=browser.session
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["expires_in"] == 30
    assert answer.headers["cache-control"] == "no-store"
    ticket: str = answer.json()["ticket"]
    remember_credential(ticket, "stream ticket")
    return ticket


async def first_frame_or_close(browser: Browser, job_id: str, ticket: str) -> dict[str, Any] | int:
    """The stream's first frame with this ticket (and no other credential), or its close code."""
    url = f"{browser.server.ws_url}/v1/jobs/{job_id}/stream?ticket={ticket}"
    async with connect(url) as ws:
        try:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        except ConnectionClosed:
            assert ws.close_code is not None
            return ws.close_code
        return frame


async def test_a_ticket_opens_its_jobs_stream_once(
    browser: Browser, job_body: dict[str, Any]
) -> None:
    job_id = await job_of(browser, job_body)
    ticket = await ticket_for(browser, job_id)

    first = await first_frame_or_close(browser, job_id, ticket)
    again = await first_frame_or_close(browser, job_id, ticket)

    assert isinstance(first, dict)
    assert first["seq"] == 1
    assert again == 4401


async def test_a_ticket_opens_no_other_jobs_stream(
    browser: Browser, job_body: dict[str, Any]
) -> None:
    job_id = await job_of(browser, job_body)
    other = await job_of(browser, job_body)
    ticket = await ticket_for(browser, job_id)

    assert await first_frame_or_close(browser, other, ticket) == 4401


async def test_an_expired_ticket_is_refused(browser: Browser, job_body: dict[str, Any]) -> None:
    job_id = await job_of(browser, job_body)
    ticket = await ticket_for(browser, job_id)
    # The server runs on its own event loop: reach its database with an engine of this one.
    engine = create_engine(browser.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(StreamTicket)
                .where(StreamTicket.id == digest(ticket))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        await engine.dispose()

    assert await first_frame_or_close(browser, job_id, ticket) == 4401


async def test_a_made_up_ticket_is_refused(browser: Browser, job_body: dict[str, Any]) -> None:
    job_id = await job_of(browser, job_body)

    assert await first_frame_or_close(browser, job_id, "made-up") == 4401


async def test_a_ticket_is_no_credential_on_plain_http(
    browser: Browser, job_body: dict[str, Any]
) -> None:
    job_id = await job_of(browser, job_body)
    ticket = await ticket_for(browser, job_id)

    answer = await browser.api.get(f"/v1/jobs/{job_id}", params={"ticket": ticket})

    assert answer.status_code == 401
    # Unspent: the refusal above did not use it up.
    assert isinstance(await first_frame_or_close(browser, job_id, ticket), dict)


async def test_no_ticket_for_a_job_the_caller_cannot_see(browser: Browser) -> None:
    answer = await browser.api.post(
        "/v1/stream/tickets", json={"job_id": "job_nothing"}, headers=browser.session
    )
    anonymous = await browser.api.post("/v1/stream/tickets", json={"job_id": "job_nothing"})

    assert (answer.status_code, anonymous.status_code) == (404, 401)


async def test_a_job_id_with_a_nul_is_a_422_not_a_server_error(browser: Browser) -> None:
    # PostgreSQL refuses a NUL in text: unchecked, this id reached the query (a 500).
    answer = await browser.api.post(
        "/v1/stream/tickets", json={"job_id": "job_\u0000x"}, headers=browser.session
    )

    assert answer.status_code == 422


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def server_log() -> Iterator[Lines]:
    """What uvicorn logs about connections (the handshake lines carry the query string)."""
    handler = Lines()
    logger = logging.getLogger("uvicorn.error")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_the_server_log_never_shows_a_ticket(
    browser: Browser, job_body: dict[str, Any], server_log: Lines
) -> None:
    job_id = await job_of(browser, job_body)
    ticket = await ticket_for(browser, job_id)

    await first_frame_or_close(browser, job_id, ticket)
    await first_frame_or_close(browser, job_id, ticket)  # refused: logged too

    handshakes = [line for line in server_log.lines if "/stream" in line]
    assert len(handshakes) >= 2
    assert all("ticket=<redacted>" in line for line in handshakes)
    assert not any(ticket in line for line in server_log.lines)
