"""A browser's half of the web sign-in, over HTTP: the backend's /auth/login, the IdP's login
form (a browser of its own, with its own cookies), back to the backend's /auth/callback. And
the same in a real browser (Debian's chromium through Playwright): `sign_in_in_chromium`.

Cookies of the backend are carried by hand (`Cookie:` headers): they are `__Host-` and
Secure, which httpx's jar would withhold from the test servers' plain-HTTP addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright
from pydantic import SecretStr

from trainyard.auth.web_sessions import SESSION_COOKIE
from trainyard.auth.web_sign_in import FLOW_COOKIE
from trainyard.core.settings import BackendSettings
from trainyard_testing.credential_leaks import remember_credential
from trainyard_testing.oidc import OidcProvider

from ..conftest import make_oidc_settings

CHROMIUM = Path("/usr/bin/chromium")
PUBLIC_URL = "https://trainyard.test"
CALLBACK_URL = f"{PUBLIC_URL}/auth/callback"


async def web_sign_in_settings(
    provider: OidcProvider,
    data_dir: Path,
    temporal_address: str,
    tier: dict[str, object],
    **overrides: object,
) -> BackendSettings:
    """auth_mode oidc with a confidential web client registered for PUBLIC_URL's callback."""
    client_id, client_secret = await provider.register_client([CALLBACK_URL])
    values: dict[str, Any] = {
        "oidc_client_id": client_id,
        "oidc_client_secret": SecretStr(client_secret),
        "public_url": PUBLIC_URL,
        **tier,
        **overrides,
    }
    return make_oidc_settings(data_dir, temporal_address, provider, **values)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of `response`, raw, by cookie name."""
    raw: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        raw[header.split("=", 1)[0].strip()] = header
    return raw


def cookie_value(header: str) -> str:
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return next(iter(jar.values())).value


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), values.get("method", "get"), {}))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1][2][values["name"]] = values.get("value", "")


async def at_the_provider(authorize_url: str, subject: str) -> str:
    """Sign `subject` in at the IdP (login form, consent) from `authorize_url`, in a fresh
    browser; returns the URL the IdP sends the browser back to (our callback, with its query)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(authorize_url)
        for _ in range(12):
            if page.is_redirect:
                location = urljoin(str(page.url), page.headers["location"])
                if location.startswith(CALLBACK_URL):
                    return location
                page = await browser.get(location)
                continue
            parser = _Forms()
            parser.feed(page.text)
            assert page.status_code == 200, page.text[-500:]
            assert len(parser.forms) == 1, page.text[-500:]
            action, method, fields = parser.forms[0]
            if "login" in fields:
                fields["login"] = subject
            url = urljoin(str(page.url), action or str(page.url))
            if method.lower() == "post":
                page = await browser.post(url, data=fields)
            else:
                page = await browser.get(url, params=fields)
    raise AssertionError(f"the sign-in at the provider did not end: {page.text[-500:]}")


@dataclass(frozen=True)
class SignedIn:
    session: str  # the session cookie's value
    session_header: str  # its raw Set-Cookie header
    landed: str  # where the callback sent the browser
    callback: httpx.Response


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def start(api: httpx.AsyncClient, next_path: str = "/") -> tuple[str, str]:
    """GET /auth/login: (the IdP's authorization URL, the flow cookie's value)."""
    login = await api.get("/auth/login", params={"next": next_path})
    assert login.status_code == 302, login.text
    flow = cookie_value(set_cookies(login)[FLOW_COOKIE])
    remember_credential(flow, "sign-in flow cookie")  # it carries the PKCE verifier
    return login.headers["location"], flow


async def sign_in(api: httpx.AsyncClient, subject: str, next_path: str = "/") -> SignedIn:
    """The whole browser flow against the backend `api` (any base URL: the callback's path
    and query are replayed on it)."""
    authorize, flow = await start(api, next_path)
    back = await at_the_provider(authorize, subject)
    callback = await api.get(path_of(back), headers={"Cookie": f"{FLOW_COOKIE}={flow}"})
    assert callback.status_code == 302, callback.text
    header = set_cookies(callback)[SESSION_COOKIE]
    remember_credential(cookie_value(header), "session cookie")
    return SignedIn(cookie_value(header), header, callback.headers["location"], callback)


def with_session(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless; fails (naming the fix) where it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing (/usr/bin/chromium): `make test` installs it "
            "(platform/tools/install-chromium.sh)"
        )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def sign_in_in_chromium(
    page: Page, base_url: str, issuer: str, subject: str, next_path: str = "/"
) -> None:
    """What a user does: the app's /auth/login, the provider's sign-in page (and its consent
    page, the first time), back on the app at `next_path`, signed in."""
    page.goto(f"{base_url}/auth/login?next={quote(next_path, safe='')}")
    assert page.url.startswith(issuer), page.url
    page.fill("input[name=login]", subject)
    page.click("button[type=submit]")
    if page.url.startswith(issuer):
        page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")
