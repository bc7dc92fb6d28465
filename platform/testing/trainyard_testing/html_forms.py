"""What a browser does with a sign-in page, over HTTP: find its form, fill it, submit it."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class UnexpectedPage(RuntimeError):
    """A page that is not the one form the flow expects (its status and tail say why)."""


@dataclass(frozen=True)
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """The forms of a page with their named inputs (what a browser would submit)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(values.get("action", ""), values.get("method", "get").lower())
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and values.get("name"):
            self._current.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def only_form(page: httpx.Response) -> Form:
    """The one form of `page` (UnexpectedPage for an error page or several forms)."""
    parser = _FormParser()
    parser.feed(page.text)
    if page.status_code != 200 or len(parser.forms) != 1:
        raise UnexpectedPage(
            f"expected a page with one form, got {page.status_code}: {page.text[-500:]}"
        )
    return parser.forms[0]


async def submit(http: httpx.AsyncClient, page: httpx.Response, form: Form) -> httpx.Response:
    """Send `form` as the browser would, relative to the page it is on."""
    url = urljoin(str(page.url), form.action or str(page.url))
    if form.method == "post":
        return await http.post(url, data=form.fields)
    return await http.get(url, params=form.fields)
