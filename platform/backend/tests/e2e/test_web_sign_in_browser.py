"""A real browser (Debian's chromium) signs in through the backend at a real OpenID Provider:
/auth/login, the provider's sign-in page, back to the app, whose own requests then carry the
session cookie (and the page's script can neither read it nor any token). Signed in so, a
viewer meets no control that would change the project, a member meets them all."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from trainyard.auth.web_sessions import SESSION_COOKIE
from trainyard.core.settings import BackendSettings
from trainyard.main import create_app
from trainyard_testing.oidc import OidcProvider
from trainyard_testing.oidc_accounts import Account

from ..auth.web_browser import launch_chromium, sign_in_in_chromium
from ..conftest import make_oidc_settings

pytestmark = pytest.mark.xdist_group("e2e")


@contextmanager
def serving(settings_for: Callable[[str], BackendSettings]) -> Iterator[str]:
    """The API on a port chosen first (the IdP must know the callback's address before the
    app's settings are made); yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings_for(base_url)), lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            pytest.fail("the API did not start")
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def web_settings(
    provider: OidcProvider, data_dir: Path, temporal_address: str, **overrides: Any
) -> Callable[[str], BackendSettings]:
    """auth_mode oidc with a web client the provider knows, for the API at a base URL."""

    def settings_for(base_url: str) -> BackendSettings:
        client_id, secret = asyncio.run(provider.register_client([f"{base_url}/auth/callback"]))
        return make_oidc_settings(
            data_dir,
            temporal_address,
            provider,
            oidc_client_id=client_id,
            oidc_client_secret=SecretStr(secret),
            public_url=base_url,
            **overrides,
        )

    return settings_for


def test_a_browser_signs_in_at_the_provider_and_lands_back_signed_in(
    tmp_path: Path, temporal_address: str, oidc_provider: OidcProvider
) -> None:
    settings_for = web_settings(oidc_provider, tmp_path / "data", temporal_address)
    with serving(settings_for) as base_url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            sign_in_in_chromium(page, base_url, oidc_provider.issuer, "alice")

            me = page.evaluate("fetch('/v1/me').then(r => r.json())")
            cookies = {c["name"]: c for c in page.context.cookies(base_url)}
            visible_to_script = page.evaluate("document.cookie")
        finally:
            browser.close()

    assert me["user"]["name"] == "Alice Adams"
    assert me["credential"] == "session"
    session = cookies[SESSION_COOKIE]
    assert (session["httpOnly"], session["secure"], session["sameSite"]) == (True, True, "Lax")
    assert visible_to_script == ""


# Roles from the provider's groups: alice's "ml-team" makes her a member; a reader a viewer.
GROUP_ROLES = {"ml-team": "ml-team:member", "ml-team-readers": "ml-team:viewer"}


def open_as(browser: Browser, base_url: str, issuer: str, subject: str, job_id: str) -> Page:
    """A fresh browser profile signed in as `subject`, on the job's page."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in_in_chromium(page, base_url, issuer, subject, f"/jobs/{job_id}")
    expect(page.get_by_test_id("job-state")).to_have_text("PENDING")
    return page


def test_a_viewer_meets_no_control_that_changes_the_project_and_a_member_meets_them(
    tmp_path: Path,
    temporal_address: str,
    oidc_provider: OidcProvider,
    job_body: dict[str, object],
) -> None:
    # A user of its own (the provider is shared by the session: its users stay as they are).
    reader = f"reader-{uuid.uuid4().hex[:8]}"
    asyncio.run(
        oidc_provider.set_account(
            reader, Account(f"{reader}@example.test", "Rea Reader", ("ml-team-readers",))
        )
    )
    settings_for = web_settings(
        oidc_provider,
        tmp_path / "data",
        temporal_address,
        oidc_groups_claim="groups",
        oidc_group_roles=GROUP_ROLES,
    )
    with serving(settings_for) as base_url:
        # A job of ml-team, submitted with a member's token; it stays PENDING (no worker
        # polls this test's task queue). Before Playwright: its loop would refuse asyncio.run.
        member_token = asyncio.run(oidc_provider.token_for("alice")).access_token
        submitted = httpx.post(
            f"{base_url}/v1/jobs",
            json=job_body,
            headers={"Authorization": f"Bearer {member_token}", "Trainyard-Project": "ml-team"},
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        with sync_playwright() as playwright:
            check_the_pages(
                launch_chromium(playwright), base_url, oidc_provider.issuer, reader, job_id
            )


def check_the_pages(browser: Browser, base_url: str, issuer: str, reader: str, job_id: str) -> None:
    """The job, chat and datasets pages as the viewer `reader`, then as the member alice."""
    try:
        viewer = open_as(browser, base_url, issuer, reader, job_id)
        expect(viewer.get_by_test_id("project-switcher")).to_have_value("ml-team")
        expect(viewer.locator("[data-testid=project-switcher] option")).to_have_text(
            ["ml-team (viewer)"]
        )
        expect(viewer.get_by_test_id("job-cancel")).to_have_count(0)
        viewer.get_by_role("link", name="Chat").click()
        expect(viewer.get_by_test_id("chat-viewer")).to_be_visible()
        expect(viewer.get_by_test_id("chat-input")).to_be_disabled()
        expect(viewer.get_by_test_id("chat-send")).to_be_disabled()
        expect(viewer.get_by_test_id("plan-start")).to_have_count(0)
        viewer.get_by_role("link", name="Datasets").click()
        expect(viewer.get_by_role("heading", name="Datasets")).to_be_visible()
        expect(viewer.get_by_test_id("dataset-upload")).to_have_count(0)

        member = open_as(browser, base_url, issuer, "alice", job_id)
        expect(member.locator("[data-testid=project-switcher] option")).to_have_text(
            ["ml-team (member)"]
        )
        expect(member.get_by_test_id("job-cancel")).to_be_enabled()
        member.get_by_role("link", name="Chat").click()
        expect(member.get_by_test_id("chat-viewer")).to_have_count(0)
        # The grammar planner answers (no language model here): a plan card with Start.
        member.get_by_test_id("chat-input").fill("train yolo11n on shapes for 2 epochs")
        member.get_by_test_id("chat-send").click()
        expect(member.get_by_test_id("plan-start")).to_be_visible()
        member.get_by_role("link", name="Datasets").click()
        expect(member.get_by_test_id("dataset-upload")).to_be_visible()
    finally:
        browser.close()
