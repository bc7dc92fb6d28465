"""A real browser (Debian's chromium) signs in through the backend at a real OpenID Provider:
/auth/login, the provider's sign-in page, back to the app, whose own requests then carry the
session cookie (and the page's script can neither read it nor any token)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import sync_playwright
from pydantic import SecretStr

from trainyard.auth.web_sessions import SESSION_COOKIE
from trainyard.main import create_app
from trainyard_testing.oidc import OidcProvider

from ..conftest import make_settings

pytestmark = pytest.mark.xdist_group("e2e")

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def serving(settings_for: Any) -> Iterator[str]:
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


def test_a_browser_signs_in_at_the_provider_and_lands_back_signed_in(
    tmp_path: Path, temporal_address: str, oidc_provider: OidcProvider
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing (/usr/bin/chromium): `make test` installs it "
            "(platform/tools/install-chromium.sh)"
        )

    def settings_for(base_url: str) -> Any:
        client_id, secret = asyncio.run(
            oidc_provider.register_client([f"{base_url}/auth/callback"])
        )
        return make_settings(
            tmp_path / "data",
            temporal_address,
            auth_mode="oidc",
            oidc_issuer=oidc_provider.issuer,
            oidc_audience=oidc_provider.audience,
            oidc_client_id=client_id,
            oidc_client_secret=SecretStr(secret),
            session_secret=SecretStr("a-session-secret-of-the-browser-test-0123"),
            public_url=base_url,
        )

    with serving(settings_for) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.goto(f"{base_url}/auth/login?next=/")
            # The provider's sign-in page, then its consent page.
            assert page.url.startswith(oidc_provider.issuer), page.url
            page.fill("input[name=login]", "alice")
            page.click("button[type=submit]")
            if page.url.startswith(oidc_provider.issuer):
                page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/")

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
